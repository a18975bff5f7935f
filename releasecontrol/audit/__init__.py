"""The audit trail: record an event in the caller's transaction, chain it, verify the chain.

hash = sha256(prev_hash hex + canonical JSON of the event), the canonical JSON
having its keys sorted, separators "," and ":", UTF-8, times in ISO 8601 UTC
with microseconds, before/after as stored. The first event's prev_hash is 64
zeros. Appends are serialized: on PostgreSQL by a transaction-level advisory
lock taken at insert, on SQLite by its single writer (transactions begin
IMMEDIATE).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models, transaction
from django.db.models import Value
from django.db.models.functions import Cast
from django.utils import timezone

from ..context import (
    RequestContext,
    current_request_context,
    normalise_client_ip,
    reset_request_context,
    set_request_context,
)
from ..db import caller_transaction_open
from ..models import AuditEvent, Environment, Outcome, User
from ..validation import text_problem

logger = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64
# Any 64-bit number unique to this table's chain lock.
CHAIN_LOCK_KEY = 0x52435F4155444954  # "RC_AUDIT"

HASHED_FIELDS = (
    "created_at",
    "actor_id",
    "actor_kind",
    "actor_name",
    "action",
    "outcome",
    "environment",
    "target_type",
    "target_id",
    "target_name",
    "before",
    "after",
    "reason",
    "request_id",
    "client_ip",
)
EXPORT_FIELDS = ("id", *HASHED_FIELDS, "prev_hash", "hash")


def _as_stored(value: Any, where: str) -> Any:
    """What PostgreSQL's jsonb gives back for a JSON value: hash what is stored."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where}: {value} cannot be recorded (JSON has no NaN or Infinity)")
        if value == 0:
            return 0.0  # jsonb's numbers have no negative zero
        text = repr(value)
        if "e+" in text:
            # jsonb writes 1e+16 back as the integer 10000000000000000, exactly the decimal
            # that was sent (not the float's binary value).
            return int(Decimal(text))
        return value
    if isinstance(value, str):
        return _text(value, where)
    if isinstance(value, list):
        return [_as_stored(item, where) for item in value]
    if isinstance(value, dict):
        return {_text(key, where): _as_stored(item, where) for key, item in value.items()}
    return value


def _text(value: str, where: str) -> str:
    problem = text_problem(value)
    if problem:
        # Refused at the edge already (releasecontrol.validation): reaching here is a bug.
        raise ValueError(f"{where} cannot be recorded: it {problem}")
    return value


def _json_value(value: Any, where: str) -> tuple[Any, str | None]:
    """What a JSON column gives back for this value (hash what is stored, not what was
    passed), and its canonical text: the text hashed is the text written (None: SQL NULL)."""
    if value is None:
        return None, None
    try:
        text = json.dumps(value, cls=DjangoJSONEncoder, allow_nan=False, ensure_ascii=False)
    except ValueError as error:
        raise ValueError(f"{where} cannot be recorded: {error}") from None
    floats: list[str] = []

    def parse_float(number: str) -> float:
        floats.append(number)
        return float(number)

    stored = json.loads(text, parse_float=parse_float)
    # json.dumps escapes a NUL as \u0000 even with ensure_ascii off; a lone surrogate stays raw.
    if floats or "\\u0000" in text or text_problem(text) is not None:
        # Something jsonb would store differently (a float, a NUL or lone surrogate in a
        # string or key): walked value by value. A large event with none of them (a
        # rollback's thousands of states) is not.
        stored = _as_stored(stored, where)
    return stored, canonical_text(stored)


def _client_ip(value: str | None) -> str | None:
    if value is None:
        return None
    address = normalise_client_ip(value)
    if address is None:
        raise ValueError(f"client_ip {value!r} is not an IP address")
    return address


def format_time(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def canonical_fields(event: AuditEvent) -> dict[str, Any]:
    return {
        "created_at": format_time(event.created_at),
        "actor_id": event.actor_id,
        "actor_kind": event.actor_kind,
        "actor_name": event.actor_name,
        "action": event.action,
        "outcome": event.outcome,
        "environment": event.environment_id,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "target_name": event.target_name,
        "before": event.before,
        "after": event.after,
        "reason": event.reason,
        "request_id": event.request_id,
        "client_ip": event.client_ip,
    }


def canonical_text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json(fields: dict[str, Any], texts: dict[str, str | None] | None = None) -> bytes:
    """The canonical JSON of these fields. `texts` holds the canonical text of some values,
    already made: spliced in as they are (the same bytes as serialising the whole dict)."""
    if not texts:
        return canonical_text(fields).encode()
    parts = []
    for key in sorted(fields):
        text = texts.get(key)
        parts.append(
            f"{canonical_text(key)}:{canonical_text(fields[key]) if text is None else text}"
        )
    return ("{" + ",".join(parts) + "}").encode()


def chain_hash(
    prev_hash: str, fields: dict[str, Any], texts: dict[str, str | None] | None = None
) -> str:
    return hashlib.sha256(prev_hash.encode() + canonical_json(fields, texts)).hexdigest()


def _stored_as(text: str | None) -> Cast | None:
    """A JSON column's value written from its canonical text (not serialised again)."""
    if text is None:
        return None
    return Cast(Value(text, output_field=models.TextField()), output_field=models.JSONField())


def _take_chain_lock() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHAIN_LOCK_KEY])


def chain_lock_held() -> bool:
    """True when this connection's open transaction holds the chain (or SQLite's write) lock."""
    if not connection.in_atomic_block:
        return False
    if connection.vendor == "sqlite":
        return True  # transactions begin IMMEDIATE: the write lock is ours
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
            " AND classid::bigint = %s AND objid::bigint = %s AND granted",
            [CHAIN_LOCK_KEY >> 32, CHAIN_LOCK_KEY & 0xFFFFFFFF],
        )
        return cursor.fetchone() is not None


@dataclass(frozen=True)
class Target:
    """What an action was about: a flag, a release, a request, a user, a token..."""

    type: str
    id: str
    name: str = ""

    @classmethod
    def of(cls, obj: models.Model, name: str | None = None) -> Target:
        return cls(type=obj._meta.model_name or "", id=str(obj.pk), name=name or str(obj))


def audit_record(
    *,
    actor: User,
    action: str,
    environment: Environment | None = None,
    target: Target | None = None,
    before: Any = None,
    after: Any = None,
    reason: str = "",
    outcome: str = Outcome.OK,
) -> AuditEvent:
    """Append one event to the chain, inside the caller's transaction."""
    if actor is None or actor.pk is None:
        raise ValueError("Every audit event needs an actor; automation acts as User.system().")
    request_context = current_request_context()
    # The canonical text is made once, outside the chain lock: hashed and written as it is.
    before, before_text = _json_value(before, "before")
    after, after_text = _json_value(after, "after")
    with transaction.atomic():
        _take_chain_lock()
        last_hash, last_time = AuditEvent.objects.order_by("-id").values_list(
            "hash", "created_at"
        ).first() or (GENESIS_HASH, None)
        now = timezone.now()
        event = AuditEvent(
            # Never earlier than the event before it (clocks of different nodes disagree):
            # time order is chain order, which lets time filters use id bounds.
            created_at=max(now, last_time) if last_time else now,
            actor=actor,
            actor_kind=actor.kind,
            actor_name=_text(actor.get_username(), "actor_name"),
            action=_text(action, "action"),
            outcome=outcome,
            environment_id=environment.slug if environment is not None else None,
            target_type=_text(target.type if target else "", "target_type"),
            target_id=_text(target.id if target else "", "target_id"),
            target_name=_text((target.name if target else "")[:200], "target_name"),
            before=before,
            after=after,
            reason=_text(reason, "reason"),
            request_id=_text(request_context.request_id, "request_id"),
            client_ip=_client_ip(request_context.client_ip),
            prev_hash=last_hash,
        )
        texts = {"before": before_text, "after": after_text}
        event.hash = chain_hash(event.prev_hash, canonical_fields(event), texts)
        event.before, event.after = _stored_as(before_text), _stored_as(after_text)
        event.save(force_insert=True)
        event.before, event.after = before, after
    return event


# --- Denials ------------------------------------------------------------------------


class DenialUnwritable(RuntimeError):
    """A refusal whose `denied` event could not be recorded: the request fails loudly.

    Not a DatabaseError, so no transaction machinery mistakes it for one and swallows it."""


@dataclass(frozen=True)
class PendingDenial:
    event: dict[str, Any]
    context: RequestContext

    def describe(self) -> str:
        actor = self.event.get("actor")
        environment = self.event.get("environment")
        return (
            f"actor={getattr(actor, 'username', actor)!r} action={self.event.get('action')!r}"
            f" environment={getattr(environment, 'slug', environment)!r}"
            f" request_id={self.context.request_id!r}"
        )


def audit_record_denial(**kwargs: Any) -> None:
    """Record a refusal so that it stays committed although the caller's transaction rolls back.

    Outside a transaction the `denied` event is written at once. Inside one it is kept on the
    connection and written, in a transaction of its own, as soon as the caller's outermost
    transaction has ended, committed or rolled back (releasecontrol/db.py): the rollback cannot
    take it along, the chain lock and the row locks that transaction held are released by then
    (nothing to deadlock with), and no thread is involved. A denial that cannot be written
    raises DenialUnwritable there, failing the request.
    """
    kwargs["outcome"] = Outcome.DENIED
    denial = PendingDenial(kwargs, current_request_context())
    if not caller_transaction_open(connection):
        write_denials([denial])
        return
    pending = getattr(connection, "pending_denials", None)
    if pending is None:
        raise ImproperlyConfigured(
            "The database backend must be one of releasecontrol.backends (settings.DATABASES):"
            " without it a refusal inside a transaction could not be recorded."
        )
    pending.append(denial)


def write_denials(denials: list[PendingDenial]) -> None:
    """Write each denial in a transaction of its own; raise DenialUnwritable if any failed."""
    failures = []
    for denial in denials:
        token = set_request_context(denial.context)
        try:
            with transaction.atomic():
                audit_record(**denial.event)
        except Exception as error:
            logger.exception("audit.denial_unwritable: %s", denial.describe())
            failures.append(error)
        finally:
            reset_request_context(token)
    if failures:
        raise DenialUnwritable(
            f"A refusal could not be recorded in the audit trail: {failures[0]}"
        ) from failures[0]


# --- Verification ------------------------------------------------------------------


@dataclass(frozen=True)
class ChainReport:
    checked: int
    first_broken_id: int | None = None
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.first_broken_id is None


def audit_verify(
    events: Iterable[AuditEvent] | None = None, *, start_hash: str = GENESIS_HASH
) -> ChainReport:
    """Re-walk the chain in id order; name the first event whose link or hash fails."""
    if events is None:
        events = AuditEvent.objects.order_by("id").iterator(chunk_size=2000)
    prev = start_hash
    checked = 0
    for event in events:
        if event.prev_hash != prev:
            return ChainReport(
                checked, event.pk, "prev_hash does not match the previous event's hash"
            )
        if chain_hash(prev, canonical_fields(event)) != event.hash:
            return ChainReport(checked, event.pk, "hash does not match the event's content")
        prev = event.hash
        checked += 1
    return ChainReport(checked)
