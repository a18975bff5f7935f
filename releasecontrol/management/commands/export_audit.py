"""manage.py export_audit --format csv|jsonl [filters] [--as NAME]: the audit trail, streamed.

Exactly the events the explorer shows for the same filter, oldest first, with every hash
field, so the file re-verifies offline (docs/audit.md). On PostgreSQL the rows are streamed
by COPY, so memory stays flat however many there are.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from releasecontrol.audit.export import (
    FORMATS,
    AuditExport,
    TextChunks,
    audit_export_open,
    filter_environment,
)
from releasecontrol.audit.selectors import AuditFilter
from releasecontrol.models import User

# Command option -> AuditFilter field.
FILTER_OPTIONS = {
    "since": "since",
    "until": "until",
    "environment": "environment",
    "actor": "actor",
    "actor-kind": "actor_kind",
    "action": "action",
    "outcome": "outcome",
    "target-type": "target_type",
    "target-id": "target_id",
}
FILTER_HELP = {
    "since": "from this date (2026-11-21) or ISO 8601 time (UTC unless it says otherwise)",
    "until": "up to this date (the whole day) or time",
    "environment": "environment slug, e.g. production",
    "actor": "the actor's name as recorded",
    "actor-kind": "human, agent or system",
    "action": 'an action, or a prefix ending in "." (e.g. "flag.")',
    "outcome": "ok or denied",
    "target-type": "e.g. flag",
    "target-id": "the target's id (with --target-type)",
}


def validation_message(error: ValidationError) -> str:
    """'--since: ... ; --outcome: use one of ok, denied' from the filter's field errors."""
    if not hasattr(error, "error_dict"):
        return " ".join(error.messages)
    by_option = {field: option for option, field in FILTER_OPTIONS.items()}
    parts = []
    for name, errors in error.message_dict.items():
        option = f"--{by_option.get(name, name.replace('_', '-'))}"
        parts.append(f"{option}: {' '.join(errors)}")
    return "; ".join(parts)


class Command(BaseCommand):
    help = (
        "Write the audit events matching the filters (all by default), with their hash fields, "
        "to standard output as CSV or JSON Lines, oldest first."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--format", choices=FORMATS, default="csv")
        for option, help_text in FILTER_HELP.items():
            parser.add_argument(f"--{option}", default="", help=help_text)
        parser.add_argument(
            "--as",
            dest="as_user",
            default="",
            metavar="NAME",
            help="the account exporting: authorized and recorded as audit.export "
            "(without it, the export is recorded as the shell operator's, the system actor)",
        )

    def handle(self, *args: Any, format: str, as_user: str, **options: Any) -> None:
        params = {
            field: options[option.replace("-", "_")] for option, field in FILTER_OPTIONS.items()
        }
        try:
            audit_filter = AuditFilter.from_params(params)
            filter_environment(audit_filter)
            export = self._export(audit_filter, format, as_user)
        except ValidationError as invalid:
            raise CommandError(f"Bad filter: {validation_message(invalid)}") from None
        except PermissionDenied as refused:
            raise CommandError(f"{refused} (recorded in the audit trail)") from None
        # self.stdout, not sys.stdout: call_command(stdout=...) and tests capture it. A real
        # stdout takes the bytes as they come; a text stream gets them decoded.
        binary = getattr(self.stdout, "buffer", None)
        if binary is not None:
            self.stdout.flush()
            export.write_to(binary)
            binary.flush()
        else:
            for text in TextChunks(export):
                self.stdout.write(text, ending="")
        self.stderr.write(f"{export.rows} events exported.")

    def _export(self, audit_filter: AuditFilter, fmt: str, as_user: str) -> AuditExport:
        actor = User.objects.filter(username=as_user).first() if as_user else User.system()
        if actor is None:
            raise CommandError(f"No account {as_user!r}: name an existing user with --as.")
        return audit_export_open(actor=actor, audit_filter=audit_filter, fmt=fmt)
