"""manage.py verify_audit [--from-id N] [--to-id M]: re-walk the audit chain.

The same walking code as the browser's verification task (a chunk at a time, so memory
stays flat); exits 1 naming the first event that breaks the chain.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from releasecontrol.audit.verification import CHUNK_SIZE, audit_chain_count, audit_chain_walk


class Command(BaseCommand):
    help = "Re-walk the audit chain; name the first event that breaks it (exit status 1)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--from-id", type=int, default=None, help="first event id to check")
        parser.add_argument("--to-id", type=int, default=None, help="last event id to check")
        parser.add_argument(
            "--progress", action="store_true", help="report progress on standard error"
        )

    def handle(
        self, *args: Any, from_id: int | None, to_id: int | None, progress: bool, **options: Any
    ) -> None:
        if any(value is not None and value < 1 for value in (from_id, to_id)):
            raise CommandError("--from-id and --to-id are event ids: whole numbers from 1.")
        if from_id is not None and to_id is not None and from_id > to_id:
            raise CommandError(f"--to-id ({to_id}) is below --from-id ({from_id}).")
        on_progress = None
        if progress:
            total = audit_chain_count(from_id=from_id, to_id=to_id)

            def on_progress(checked: int, last_id: int, last_hash: str) -> None:
                if checked % (CHUNK_SIZE * 20) == 0 or checked == total:
                    self.stderr.write(f"{checked}/{total} events verified (up to #{last_id})")

        report = audit_chain_walk(from_id=from_id, to_id=to_id, on_progress=on_progress)
        scope = (
            "Audit chain"
            if from_id is None and to_id is None
            else (f"Audit events #{from_id or 1}..#{to_id if to_id is not None else 'end'}")
        )
        if not report.ok:
            raise CommandError(
                f"{scope} BROKEN at event #{report.first_broken_id}: {report.problem} "
                f"({report.checked} events before it are intact)."
            )
        head = (
            f", up to event #{report.last_id} (hash {report.last_hash})"
            if report.last_id is not None
            else ""
        )
        self.stdout.write(f"{scope} intact: {report.checked} events verified{head}.")
