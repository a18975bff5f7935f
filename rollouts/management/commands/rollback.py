"""manage.py rollback ENVIRONMENT --reason TEXT --as NAME: the big button, from a shell.

The same service as the on-call page, the board and POST /api/v1/environments/{env}/rollback
(rollouts.emergency.environment_rollback), acting as the named account: an agent (or anyone
without the kill switch role there) is refused, and the refusal is in the audit trail.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from releasecontrol.models import Environment, User
from releasecontrol.notifications.services import absolute_link
from rollouts.emergency import environment_rollback


def _describe(state: dict[str, Any]) -> str:
    mode = state.get("mode", "?")
    if mode == "percentage":
        mode = f"percentage {state.get('percentage')}%"
    allowlisted = len(state.get("allowlist") or [])
    return f"{mode}, {allowlisted} allowlisted" if allowlisted else mode


def _stage(release: dict[str, Any]) -> str:
    if release.get("stage") is None:
        return release["status"]
    return f"{release['status']} at stage {release['stage_index'] + 1} {release['stage']}" + (
        f" ({release['percentage']}%)" if release.get("mode") == "percentage" else ""
    )


class Command(BaseCommand):
    help = (
        "Roll an environment back as the named account: its kill switch engaged, every flag "
        "off and every live release rolled back, in one transaction. Idempotent."
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
        rollback = result.rollback
        if result.already:
            self.stdout.write(
                f"{env.slug} was already rolled back by {rollback.actor.username} at "
                f"{rollback.created_at:%Y-%m-%d %H:%M:%S %Z} ({rollback.reason}): nothing more "
                f"to turn off. Rollback {rollback.pk}."
            )
            return
        self.stdout.write(
            f"Rolled back {env.slug}: rollback {rollback.pk}, turned off "
            f"{len(result.turned_off)} flag state(s), stopped "
            f"{len(result.releases_stopped)} release(s). Increases are refused until a "
            "rollback.restore request is approved and executed."
        )
        for entry in result.turned_off:
            self.stdout.write(f"  flag {entry['flag']}: was {_describe(entry['before'])}")
        for release in result.releases_stopped:
            self.stdout.write(
                f"  release {release['name']} {release['version']}: was {_stage(release)}"
            )
        self.stdout.write(f"Snapshot: {absolute_link(result.link)}")
