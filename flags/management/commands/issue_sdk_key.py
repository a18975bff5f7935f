from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from flags.services import sdk_key_issue
from releasecontrol.models import Environment, User


class Command(BaseCommand):
    help = (
        "Issue an SDK key for ENVIRONMENT (what services send to /ofrep/v1/...); the key is "
        "printed once, alone on the last line."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("environment", help="environment slug, e.g. production")
        parser.add_argument("--name", default="default", help="what the key is for")

    def handle(self, *args, environment: str, name: str, **options) -> None:
        target = Environment.objects.filter(slug=environment).first()
        if target is None:
            known = ", ".join(Environment.objects.values_list("slug", flat=True))
            raise CommandError(f"No environment {environment!r}; known: {known}.")
        if not name.strip():
            raise CommandError("--name must not be empty.")
        try:
            issued = sdk_key_issue(
                actor=User.system(),
                environment=target,
                name=name.strip(),
                reason="manage.py issue_sdk_key",
            )
        except ValidationError as error:
            raise CommandError("; ".join(error.messages)) from None
        self.stderr.write(
            f"SDK key {name.strip()!r} for {target.slug} ({issued.key.hint}...). It is shown "
            "once: store it now. Services send it as Authorization: Bearer <key>."
        )
        self.stdout.write(issued.raw)
