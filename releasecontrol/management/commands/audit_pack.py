"""manage.py audit_pack: one zip with what happened in an environment during a window.

    manage.py audit_pack --since 2026-11-21T09:00 --until 2026-11-21T11:00 \\
        --environment production --output incident.zip
    manage.py audit_pack --kill-switch-event 4211 --output incident.zip   # 1 h either side

Acts as the system actor unless `--as NAME` names the account; recorded as `audit.pack`.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from releasecontrol.audit.packs import audit_pack_build
from releasecontrol.audit.selectors import AuditFilter
from releasecontrol.management.commands.export_audit import validation_message
from releasecontrol.models import User


class Command(BaseCommand):
    help = (
        "Build an incident audit pack (zip: events, flag states before/after, kill switches, "
        "manifest with sha256 of every file) for a window and environment, or around a "
        "kill-switch event."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--since", default="", help="window start: date or ISO 8601 time")
        parser.add_argument("--until", default="", help="window end: date (whole day) or time")
        parser.add_argument("--environment", default="", help="environment slug")
        parser.add_argument(
            "--kill-switch-event",
            type=int,
            default=None,
            metavar="ID",
            help="the audit event id of a kill switch engage or release: the window is "
            "--window-minutes before to after it, in its environment",
        )
        parser.add_argument("--window-minutes", type=int, default=None, help="default 60")
        parser.add_argument("--output", required=True, help="the zip file to write")
        parser.add_argument(
            "--as", dest="as_user", default="", metavar="NAME", help="the account building it"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        actor = self._actor(options["as_user"])
        event_id = options["kill_switch_event"]
        if event_id is None and not (options["since"] and options["until"]):
            raise CommandError(
                "Say which window: --since, --until and --environment, or --kill-switch-event ID."
            )
        try:
            times = AuditFilter.from_params({"since": options["since"], "until": options["until"]})
        except ValidationError as invalid:
            raise CommandError(f"Bad window: {validation_message(invalid)}") from None
        minutes = options["window_minutes"]
        output = Path(options["output"])
        try:
            pack = audit_pack_build(
                actor=actor,
                since=times.since,
                until=times.until,
                environment=options["environment"] or None,
                kill_switch_event=event_id,
                window=dt.timedelta(minutes=minutes) if minutes is not None else None,
            )
        except ValidationError as invalid:
            raise CommandError(f"Cannot build the pack: {validation_message(invalid)}") from None
        except PermissionDenied as refused:
            raise CommandError(f"{refused} (recorded in the audit trail)") from None
        with output.open("wb") as out:
            shutil.copyfileobj(pack.file, out)
        counts = pack.manifest["counts"]
        self.stdout.write(
            f"Wrote {output} ({pack.size} bytes, sha256 {pack.sha256}): "
            f"{pack.manifest['environment']} {pack.manifest['since']} .. "
            f"{pack.manifest['until']}; {counts.get('events.csv', 0)} events, "
            f"{counts.get('flag_states.json', 0)} flags, "
            f"{counts.get('kill_switches.json', 0)} kill-switch events. "
            f"Recorded as audit event #{pack.event.pk if pack.event else '?'}."
        )

    def _actor(self, name: str) -> User:
        if not name:
            return User.system()
        actor = User.objects.filter(username=name).first()
        if actor is None:
            raise CommandError(f"No account {name!r}: name an existing user with --as.")
        return actor
