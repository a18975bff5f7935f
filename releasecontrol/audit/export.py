"""Streaming exports of exactly a filtered set of audit events, as CSV or JSON Lines.

Every column of EXPORT_FIELDS (the hashed fields, `id`, `prev_hash` and `hash`), oldest
first, so that anyone can re-verify the chain offline (docs/audit.md has the script).

On PostgreSQL the rows leave the server through `COPY (filtered query) TO STDOUT`: the
database formats them (times exactly as `format_time` writes them, before/after as JSON
text) and Python only passes chunks of bytes along, so memory stays flat and throughput
stays close to a bare COPY. Elsewhere (the embedded SQLite default) a chunked iterator
formats the rows in Python. Both give the same values once parsed; only the JSON text of
before/after may differ in spacing and key order, which is why verification re-serialises
it canonically.
"""

from __future__ import annotations

import codecs
import datetime as dt
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from ..csvwriter import CsvWriter, neutralise_sql
from ..models import AuditEvent, Environment, User
from . import EXPORT_FIELDS, Target, audit_record, canonical_fields, canonical_json
from .selectors import AuditFilter, audit_events


class Writable(Protocol):
    """Where an export's bytes go: a file, a zip entry, a response."""

    def write(self, data: bytes, /) -> int: ...


FORMATS = ("csv", "jsonl")
ExportFormat = Literal["csv", "jsonl"]
ExportMethod = Literal["auto", "copy", "iterator"]
CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/jsonl; charset=utf-8"}

# Bytes handed on per chunk (a streamed response's write, a file's write).
CHUNK_BYTES = 256 * 1024
# Rows per fetch on the iterator path (a server-side cursor on PostgreSQL).
ITERATOR_CHUNK_ROWS = 2000

# Columns as they are stored: EXPORT_FIELDS are the column names (`environment` is the slug).
_STORED_COLUMNS = EXPORT_FIELDS

# format_time(): ISO 8601 in UTC with microseconds, "2026-11-21T09:30:00.000000+00:00".
_TIME_SQL = """to_char(e.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')"""


def _column_sql(name: str) -> str:
    if name == "created_at":
        return _TIME_SQL
    # inet and jsonb leave the server in the text Django reads them as (an address without
    # a /32 mask, JSON text), so both paths see the same values.
    return f'e."{name}"'


# Numbers, the formatted time, addresses and the hex hashes never start like a formula; every
# other column goes through the CSV writer's rule, in SQL (docs/audit.md, "Formula cells").
_CSV_PLAIN_COLUMNS = frozenset({"id", "created_at", "actor_id", "client_ip", "prev_hash", "hash"})


def _csv_column_sql(name: str) -> str:
    if name in _CSV_PLAIN_COLUMNS:
        return _column_sql(name)
    return neutralise_sql(f"{_column_sql(name)}::text")


_CSV_COLUMNS_SQL = ", ".join(f'{_csv_column_sql(name)} AS "{name}"' for name in EXPORT_FIELDS)
_JSON_OBJECT_SQL = (
    "json_build_object("
    + ", ".join(f"'{name}', {_column_sql(name)}" for name in EXPORT_FIELDS)
    + ")"
)
# One JSON document per line, written raw: CSV with a quote and a delimiter that JSON text
# never contains unescaped (PostgreSQL escapes control characters in JSON), so nothing is
# quoted or escaped (COPY's text format would double every backslash).
_JSONL_COPY_OPTIONS = "FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02'"


def export_queryset(
    audit_filter: AuditFilter | None = None,
    *,
    from_id: int | None = None,
    to_id: int | None = None,
) -> QuerySet[AuditEvent]:
    """Exactly the events an export holds, oldest first (the chain's order)."""
    events = audit_events(audit_filter)
    if from_id is not None:
        events = events.filter(id__gte=from_id)
    if to_id is not None:
        events = events.filter(id__lte=to_id)
    return events.order_by("id")


def export_copy_sql(
    audit_filter: AuditFilter | None = None,
    *,
    fmt: ExportFormat = "csv",
    from_id: int | None = None,
    to_id: int | None = None,
) -> tuple[str, tuple[Any, ...]]:
    """The COPY statement for PostgreSQL: the selector's own filtered query, compiled by
    Django, wrapped in a select that formats each column as the canonical JSON expects."""
    inner = export_queryset(audit_filter, from_id=from_id, to_id=to_id).order_by()
    inner_sql, params = inner.values_list(*_STORED_COLUMNS).query.sql_with_params()
    # Only constants and Django's compiled SQL go into the text; values stay parameters.
    if fmt == "csv":
        select = f"SELECT {_CSV_COLUMNS_SQL} FROM ({inner_sql}) AS e ORDER BY e.id"  # noqa: S608
        return f"COPY ({select}) TO STDOUT WITH (FORMAT csv, HEADER)", params
    if fmt == "jsonl":
        select = f"SELECT {_JSON_OBJECT_SQL} FROM ({inner_sql}) AS e ORDER BY e.id"  # noqa: S608
        return f"COPY ({select}) TO STDOUT WITH ({_JSONL_COPY_OPTIONS})", params
    raise ValueError(f"unknown export format {fmt!r}: use csv or jsonl")


@dataclass
class AuditExport:
    """One export, iterated once as chunks of UTF-8 bytes; `rows` is known once it is done.

    Pass it to a StreamingHttpResponse, or write its chunks to a file.
    """

    audit_filter: AuditFilter = field(default_factory=AuditFilter)
    fmt: ExportFormat = "csv"
    from_id: int | None = None
    to_id: int | None = None
    method: ExportMethod = "auto"
    rows: int | None = None

    def __post_init__(self) -> None:
        if self.fmt not in FORMATS:
            raise ValueError(f"unknown export format {self.fmt!r}: use csv or jsonl")
        if self.method == "auto":
            self.method = "copy" if connection.vendor == "postgresql" else "iterator"
        if self.method == "copy" and connection.vendor != "postgresql":
            raise ValueError("COPY exports need PostgreSQL")

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.fmt]

    def filename(self, at: dt.datetime | None = None) -> str:
        at = (at or timezone.now()).astimezone(dt.UTC)
        return f"audit-{at:%Y%m%dT%H%M%SZ}.{self.fmt}"

    def __iter__(self) -> Iterator[bytes]:
        if self.method == "copy":
            return self._copy_chunks()
        return self._iterator_chunks()

    def write_to(self, out: Writable) -> int:
        """Write every chunk to a binary stream; return the number of events."""
        for chunk in self:
            out.write(chunk)
        return self.rows or 0

    # --- PostgreSQL: COPY ... TO STDOUT --------------------------------------------------

    def _copy_chunks(self) -> Iterator[bytes]:
        sql, params = export_copy_sql(
            self.audit_filter, fmt=self.fmt, from_id=self.from_id, to_id=self.to_id
        )
        # COPY takes no parameters: bind them client-side, as psycopg's ClientCursor would.
        statement = connection.ops.compose_sql(sql, params) if params else sql
        buffer = bytearray()
        with connection.cursor() as cursor:
            # One statement, one snapshot: rows appended meanwhile are not half-included.
            # Leaving early (a client that hangs up) cancels the COPY on the server.
            with cursor.copy(statement) as copy:
                while data := copy.read():  # one row per read; hand on larger chunks
                    buffer += data
                    if len(buffer) >= CHUNK_BYTES:
                        yield bytes(buffer)
                        buffer.clear()
            self.rows = cursor.rowcount
        if buffer:
            yield bytes(buffer)

    # --- Anywhere: a chunked iterator, formatted in Python -------------------------------

    def _iterator_chunks(self) -> Iterator[bytes]:
        events = export_queryset(self.audit_filter, from_id=self.from_id, to_id=self.to_id)
        text = io.StringIO()
        writer = CsvWriter(text)
        if self.fmt == "csv":
            writer.writerow(EXPORT_FIELDS)
        count = 0
        # One statement, one snapshot: a server-side cursor on PostgreSQL, a single read
        # statement on SQLite (no transaction: SQLite's would take the write lock).
        for event in events.iterator(chunk_size=ITERATOR_CHUNK_ROWS):
            row = export_row(event)
            if self.fmt == "csv":
                writer.writerow(csv_values(row))
            else:
                text.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
            if text.tell() >= CHUNK_BYTES:
                yield text.getvalue().encode()
                text.seek(0)
                text.truncate()
        self.rows = count
        if text.tell():
            yield text.getvalue().encode()


def export_row(event: AuditEvent) -> dict[str, Any]:
    """One event as the export's values, in EXPORT_FIELDS order."""
    return {
        "id": event.pk,
        **canonical_fields(event),
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


def csv_values(row: dict[str, Any]) -> list[Any]:
    """A row's CSV cells: JSON columns as JSON text, null as an empty cell."""
    cells = []
    for name in EXPORT_FIELDS:
        value = row[name]
        if value is None:
            cells.append("")
        elif name in ("before", "after"):
            cells.append(canonical_json(value).decode())
        else:
            cells.append(value)
    return cells


def audit_export(
    audit_filter: AuditFilter | None = None,
    *,
    fmt: ExportFormat = "csv",
    from_id: int | None = None,
    to_id: int | None = None,
    method: ExportMethod = "auto",
) -> AuditExport:
    """Exactly the filtered events (optionally only ids from_id..to_id), as a stream of bytes.

    This neither authorizes nor records anything: people's exports go through
    `audit_export_open`.
    """
    return AuditExport(
        audit_filter=audit_filter or AuditFilter(),
        fmt=fmt,
        from_id=from_id,
        to_id=to_id,
        method=method,
    )


def filter_environment(audit_filter: AuditFilter) -> Environment | None:
    """The environment a filter names (None: every environment); unknown -> ValidationError."""
    if not audit_filter.environment:
        return None
    environment = Environment.objects.filter(slug=audit_filter.environment).first()
    if environment is None:
        known = ", ".join(Environment.objects.order_by("position").values_list("slug", flat=True))
        raise ValidationError(
            {"environment": f"no environment {audit_filter.environment!r}; use one of {known}"}
        )
    return environment


def audit_export_open(
    *,
    actor: User,
    audit_filter: AuditFilter | None = None,
    fmt: ExportFormat = "csv",
) -> AuditExport:
    """A person's (or the system's) export: authorized, recorded as `audit.export`, then streamed.

    The export holds the events up to the chain head at this moment, and the event recording
    it names that head, so what was handed out can be reproduced exactly. The event is
    committed before the first byte leaves (a download cut short was still an export).
    Refusals raise PermissionDenied (recorded as denied); an unknown environment or format
    raises ValidationError.
    """
    from ..policy import authorize  # the policy imports the audit package

    audit_filter = audit_filter or AuditFilter()
    if fmt not in FORMATS:
        raise ValidationError({"format": f"use one of {', '.join(FORMATS)}"})
    environment = filter_environment(audit_filter)
    requested = {"filter": audit_filter.as_params(), "format": fmt}
    target = Target("audit", "", "audit trail")
    with transaction.atomic():
        authorize(actor, "audit.export", environment, target=target, requested=requested)
        head = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first()
        audit_record(
            actor=actor,
            action="audit.export",
            environment=environment,
            target=target,
            after={**requested, "up_to_id": head},
        )
    return audit_export(audit_filter, fmt=fmt, to_id=head or 0)


class TextChunks:
    """Decode an export's byte chunks for a text stream (a command's stdout under
    call_command), never splitting a UTF-8 character across writes."""

    def __init__(self, export: AuditExport) -> None:
        self.export = export

    def __iter__(self) -> Iterator[str]:
        decoder = codecs.getincrementaldecoder("utf-8")()
        for chunk in self.export:
            yield decoder.decode(chunk)
        tail = decoder.decode(b"", final=True)
        if tail:
            yield tail
