"""manage.py rollback ENVIRONMENT --reason TEXT --as NAME: the big button, from a shell.

The same service as the board and POST /api/v1/environments/{env}/rollback, acting as
the named account: an agent (or anyone without the kill switch role there) is refused,
and the refusal is in the audit trail.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from flags.services import environment_rollback
from releasecontrol.models import Environment, User


def _describe(state: dict[str, Any]) -> str:
    mode = state.get("mode", "?")
    if mode == "percentage":
        mode = f"percentage {state.get('percentage')}%"
    allowlisted = len(state.get("allowlist") or [])
    return f"{mode}, {allowlisted} allowlisted" if allowlisted else mode


class Command(BaseCommand):
    help = (
        "Roll an environment back: engage its kill switch, turning every flag off in one "
        "transaction, as the named account. Idempotent."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("environment", help="environment slug, e.g. production")
        parser.add_argument("--reason", required=True, help="why: recorded in the audit trail")
        parser.add_argument(
            "--as",
            dest="as_user",
            required=True,
            metavar="NAME",
            help="the account that acts (on-call or release manager)",
        )

    def handle(self, *args: Any, environment: str, reason: str, as_user: str, **options) -> None:
        actor = User.objects.filter(username=as_user).first()
        if actor is None:
            raise CommandError(f"No account {as_user!r}: name an existing user with --as.")
        env = Environment.objects.filter(slug=environment).first()
        if env is None:
            known = ", ".join(Environment.objects.values_list("slug", flat=True))
            raise CommandError(f"No environment {environment!r}; known: {known}.")
        try:
            result = environment_rollback(actor=actor, environment=env, reason=reason)
        except PermissionDenied as refused:
            raise CommandError(f"{refused} (recorded in the audit trail)") from None
        except ValidationError as invalid:
            raise CommandError(" ".join(invalid.messages)) from None
        switch = result.switch
        if result.already_engaged:
            self.stdout.write(
                f"{env.slug} was already rolled back by {switch.engaged_by.username} at "
                f"{switch.engaged_at:%Y-%m-%d %H:%M:%S %Z} ({switch.reason}): nothing more "
                "to turn off."
            )
            return
        self.stdout.write(
            f"Rolled back {env.slug}: turned off {len(result.turned_off)} flag state(s). "
            "Increases are refused until someone releases the kill switch."
        )
        for entry in result.turned_off:
            self.stdout.write(f"  {entry['flag']}: was {_describe(entry['before'])}")
