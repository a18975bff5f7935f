"""Walking the audit chain in chunks: one piece of code for `verify_audit` and for the Celery
task `releasecontrol.audit.verify_chain`, which stores its progress in the database
(`AuditVerification`) so that any web node can show it.

Each chunk is checked by `audit_verify` (the same per-event check everywhere), continuing
from the previous chunk's last hash. A range (from_id..to_id) starts from the hash of the
event just before it, as stored: it proves the events in the range and their link into it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from celery import shared_task
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from ..models import AuditEvent, AuditVerification, User, VerificationStatus
from . import GENESIS_HASH, ChainReport, Target, audit_record, audit_verify

logger = logging.getLogger(__name__)

CHUNK_SIZE = 5000
TASK_NAME = "releasecontrol.audit.verify_chain"

# checked so far, the last event verified and its hash
ProgressCallback = Callable[[int, int, str], None]


@dataclass(frozen=True)
class ChainWalkReport(ChainReport):
    """A ChainReport plus the head of what was proven: the last event verified."""

    last_id: int | None = None
    last_hash: str = ""


def _range(from_id: int | None, to_id: int | None) -> QuerySet[AuditEvent]:
    events = AuditEvent.objects.all()
    if from_id is not None:
        events = events.filter(id__gte=from_id)
    if to_id is not None:
        events = events.filter(id__lte=to_id)
    return events


def audit_chain_count(*, from_id: int | None = None, to_id: int | None = None) -> int:
    return _range(from_id, to_id).count()


def audit_chain_start_hash(from_id: int | None) -> str:
    """What the first event of a range must link to: the stored hash of the event before it."""
    if from_id is None:
        return GENESIS_HASH
    previous = (
        AuditEvent.objects.filter(id__lt=from_id)
        .order_by("-id")
        .values_list("hash", flat=True)
        .first()
    )
    return previous or GENESIS_HASH


def audit_chain_walk(
    *,
    from_id: int | None = None,
    to_id: int | None = None,
    chunk_size: int = CHUNK_SIZE,
    on_progress: ProgressCallback | None = None,
) -> ChainWalkReport:
    """Verify events from_id..to_id (default: the whole chain) in id order, a chunk at a time;
    name the first event whose link or hash fails."""
    prev = audit_chain_start_hash(from_id)
    after_id = from_id - 1 if from_id is not None else 0
    checked = 0
    last_id: int | None = None
    last_hash = ""
    events = _range(None, to_id).order_by("id")
    while chunk := list(events.filter(id__gt=after_id)[:chunk_size]):
        report = audit_verify(chunk, start_hash=prev)
        checked += report.checked
        if not report.ok:
            if report.checked:  # the events of this chunk before the broken one held
                last_id, last_hash = chunk[report.checked - 1].pk, chunk[report.checked - 1].hash
            return ChainWalkReport(
                checked, report.first_broken_id, report.problem, last_id, last_hash
            )
        prev = last_hash = chunk[-1].hash
        after_id = last_id = chunk[-1].pk
        if on_progress is not None:
            on_progress(checked, last_id, last_hash)
    return ChainWalkReport(checked, None, "", last_id, last_hash)


# --- The task and its progress row ---------------------------------------------------------


def _validate_range(from_id: int | None, to_id: int | None) -> None:
    errors = {}
    for name, value in (("from_id", from_id), ("to_id", to_id)):
        if value is not None and value < 1:
            errors[name] = "an event id is a whole number from 1"
    if not errors and from_id is not None and to_id is not None and from_id > to_id:
        errors["to_id"] = f"must not be below the first id ({from_id})"
    if errors:
        raise ValidationError(errors)


def _enqueue(verification_id: int) -> None:
    # A queue of its own when configured (the tests use one no other worker listens to).
    queue = getattr(settings, "AUDIT_VERIFY_QUEUE", None)
    audit_verify_chain.apply_async(args=[verification_id], queue=queue)


def audit_verification_start(
    *, actor: User, from_id: int | None = None, to_id: int | None = None
) -> AuditVerification:
    """Queue a walk of the chain (or of ids from_id..to_id): authorized like an export of the
    whole trail, recorded as `audit.verify`, queued once the transaction commits."""
    from ..actions import AUDIT_VERIFY  # the policy imports the audit package
    from ..policy import authorize

    requested = {"from_id": from_id, "to_id": to_id}
    with transaction.atomic():
        authorize(
            actor,
            AUDIT_VERIFY,
            None,
            target=Target("audit", "", "audit chain"),
            requested=requested,
        )
        _validate_range(from_id, to_id)
        verification = AuditVerification.objects.create(
            requested_by=actor, from_id=from_id, to_id=to_id
        )
        audit_record(
            actor=actor,
            action=AUDIT_VERIFY.name,
            target=Target(
                "auditverification", str(verification.pk), f"verification #{verification.pk}"
            ),
            after={"verification": verification.pk, **requested},
        )
        # robust: a broker that is down leaves the row queued (the page says so), not a 500.
        transaction.on_commit(partial(_enqueue, verification.pk), robust=True)
    return verification


def _save(verification_id: int, **fields: object) -> None:
    AuditVerification.objects.filter(pk=verification_id).update(**fields)


def audit_verification_run(
    *, verification_id: int, chunk_size: int = CHUNK_SIZE
) -> AuditVerification:
    """Walk the chain for one queued verification, storing progress after every chunk."""
    now = timezone.now()
    # Claim it: a message delivered twice (a worker lost mid-task) runs once.
    claimed = AuditVerification.objects.filter(
        pk=verification_id, status=VerificationStatus.QUEUED
    ).update(status=VerificationStatus.RUNNING, started_at=now, progress_at=now)
    verification = AuditVerification.objects.get(pk=verification_id)
    if not claimed:
        return verification
    try:
        total = audit_chain_count(from_id=verification.from_id, to_id=verification.to_id)
        _save(verification_id, total=total)

        def progress(checked: int, last_id: int, last_hash: str) -> None:
            _save(
                verification_id,
                checked=checked,
                last_id=last_id,
                last_hash=last_hash,
                progress_at=timezone.now(),
            )

        report = audit_chain_walk(
            from_id=verification.from_id,
            to_id=verification.to_id,
            chunk_size=chunk_size,
            on_progress=progress,
        )
    except Exception as error:
        _save(
            verification_id,
            status=VerificationStatus.FAILED,
            problem=f"{type(error).__name__}: {error}",
            finished_at=timezone.now(),
        )
        logger.exception("audit.verification_failed id=%s", verification_id)
        raise
    finished = timezone.now()
    _save(
        verification_id,
        status=VerificationStatus.INTACT if report.ok else VerificationStatus.BROKEN,
        checked=report.checked,
        last_id=report.last_id,
        last_hash=report.last_hash,
        first_broken_id=report.first_broken_id,
        problem=report.problem,
        # A range that grew while it was walked: the total is what was proven.
        total=max(total, report.checked) if report.ok else total,
        progress_at=finished,
        finished_at=finished,
    )
    if report.ok:
        logger.info("audit.chain_intact id=%s checked=%s", verification_id, report.checked)
    else:
        logger.error(
            "audit.chain_broken id=%s first_broken_id=%s problem=%s",
            verification_id,
            report.first_broken_id,
            report.problem,
        )
    verification.refresh_from_db()
    return verification


@shared_task(name=TASK_NAME, ignore_result=True)
def audit_verify_chain(verification_id: int) -> None:
    """Load by id, call the service: the walk and its progress live in the database."""
    chunk_size = getattr(settings, "AUDIT_VERIFY_CHUNK_SIZE", CHUNK_SIZE)
    audit_verification_run(verification_id=verification_id, chunk_size=chunk_size)
