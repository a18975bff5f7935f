"""The audit trail: record an event in the caller's transaction, chain it, verify the chain.

hash = sha256(prev_hash hex + canonical JSON of the event), the canonical JSON
having its keys sorted, separators "," and ":", UTF-8, times in ISO 8601 UTC
with microseconds, before/after as stored. The first event's prev_hash is 64
zeros. Appends are serialized: on PostgreSQL by a transaction-level advisory
lock taken at insert, on SQLite by its single writer (transactions begin
IMMEDIATE).
"""

from __future__ import annotations

import contextvars
import datetime as dt
import hashlib
import json
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, connections, models, transaction
from django.utils import timezone

from ..context import current_request_context
from ..models import AuditEvent, Environment, Outcome, User

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


def _as_stored(value: Any) -> Any:
    # PostgreSQL's jsonb writes a float like 1e+16 back as the integer 10000000000000000; such
    # floats are whole numbers, so store them as the integer in the first place.
    if isinstance(value, float) and "e+" in repr(value):
        return int(value)
    if isinstance(value, list):
        return [_as_stored(item) for item in value]
    if isinstance(value, dict):
        return {key: _as_stored(item) for key, item in value.items()}
    return value


def _json_value(value: Any) -> Any:
    """What a JSON column gives back for this value: hash what is stored, not what was passed."""
    if value is None:
        return None
    return _as_stored(json.loads(json.dumps(value, cls=DjangoJSONEncoder)))


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


def canonical_json(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def chain_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode() + canonical_json(fields)).hexdigest()


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


def _own_transaction_may_block_write() -> bool:
    """True when a write on another connection could wait for this open transaction: it
    holds the chain lock, or it has written or locked rows (FOR UPDATE on the actor or the
    environment an event refers to blocks the foreign-key check of that write)."""
    if chain_lock_held():
        return True
    if not connection.in_atomic_block:
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT txid_current_if_assigned() IS NOT NULL")
        return cursor.fetchone()[0]


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
            actor_name=actor.get_username(),
            action=action,
            outcome=outcome,
            environment_id=environment.slug if environment is not None else None,
            target_type=target.type if target else "",
            target_id=target.id if target else "",
            target_name=(target.name if target else "")[:200],
            before=_json_value(before),
            after=_json_value(after),
            reason=reason,
            request_id=request_context.request_id,
            client_ip=request_context.client_ip,
            prev_hash=last_hash,
        )
        event.hash = chain_hash(event.prev_hash, canonical_fields(event))
        event.save(force_insert=True)
    return event


# --- Denials ------------------------------------------------------------------------

_pending_lock = threading.Lock()
_pending: list[threading.Thread] = []


def audit_record_denial(**kwargs: Any) -> None:
    """Record a refusal so that it stays committed although the caller's transaction rolls back.

    The event is written on a connection of its own (another thread). When this
    request's transaction already holds the chain lock or has locked rows, waiting for
    that write could deadlock, so it completes as soon as the transaction ends instead.
    """
    kwargs["outcome"] = Outcome.DENIED
    context = contextvars.copy_context()
    failures: list[BaseException] = []
    thread = threading.Thread(
        target=context.run, args=(_write_on_own_connection, kwargs, failures), name="audit-denial"
    )
    thread.start()
    if _own_transaction_may_block_write():
        with _pending_lock:
            _pending.append(thread)
        return
    thread.join()
    if failures:
        # The other connection could not see what the event refers to (an actor made in
        # this very transaction): record it here rather than lose it.
        audit_record(**kwargs)


def _write_on_own_connection(kwargs: dict[str, Any], failures: list[BaseException]) -> None:
    try:
        with transaction.atomic():
            audit_record(**kwargs)
    except Exception as error:
        failures.append(error)
        logger.warning("audit.denial_deferred_write_failed: %s", error)
    finally:
        connections.close_all()


def wait_for_pending_denials(timeout: float = 30.0) -> None:
    """Block until denials deferred behind a transaction are written (tests, command exit)."""
    with _pending_lock:
        threads, _pending[:] = list(_pending), []
    for thread in threads:
        thread.join(timeout)


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
