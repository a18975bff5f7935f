import datetime as dt

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from releasecontrol.models import User
from releasecontrol.services import api_token_issue


class Command(BaseCommand):
    help = "Issue a personal API token for NAME; the token is printed once, alone on the last line."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--label", default="cli", help="what the token is for")
        parser.add_argument("--days", type=int, default=None, help="valid for this many days")

    def handle(self, *args, name: str, label: str, days: int | None, **options) -> None:
        user = User.objects.filter(username=name).first()
        if user is None:
            raise CommandError(f"No account {name!r}; create it with add_user first.")
        if days is not None and days <= 0:
            raise CommandError("--days must be a positive number of days.")
        try:
            issued = api_token_issue(
                actor=User.system(),
                user=user,
                name=label,
                expires_in=dt.timedelta(days=days) if days else None,
                reason="manage.py issue_token",
            )
        except ValidationError as error:
            raise CommandError("; ".join(error.messages)) from None
        self.stderr.write(
            f"Token for {user.username} ({label}), expires {issued.token.expires_at:%Y-%m-%d}. "
            "It is shown once: store it now."
        )
        self.stdout.write(issued.raw)
