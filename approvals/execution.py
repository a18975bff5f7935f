"""Executing approved requests (a person's step, or the scheduler's at the window), the
verifier plugged into core, expiry, and post-reviews of emergencies."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from releasecontrol import requestable
from releasecontrol.audit import Target, audit_record
from releasecontrol.errors import Conflict
from releasecontrol.models import Environment, User
from releasecontrol.policy import authorize, decide
from releasecontrol.requestable import ApprovalDrifted, ApprovalFacts, ApprovalInvalid

from . import actions
from .blackouts import blackout_open, blackout_view
from .decisions import valid_gos
from .models import OPEN_STATUSES, ApprovalRequest, BlackoutWindow, Decision, PostReview, Status
from .notify import notify_executed, notify_expired
from .revisions import (
    as_stored,
    lifecycle_tell,
    preview_hash_of,
    refuse,
    request_lock,
    request_target,
    request_view,
)

logger = logging.getLogger(__name__)


class BlackoutOpen(Conflict):
    code = "blackout"


class NotApproved(Conflict):
    code = "not_approved"


# --- The verifier (installed into releasecontrol.requestable by AppConfig.ready) -------------


def approval_request_verify(
    request_id: int, *, action: str, environment: Environment, parameters: dict[str, Any]
) -> ApprovalFacts:
    """Re-read the request under a row lock in the caller's transaction and prove that it
    approves exactly this change now; raise ApprovalInvalid or ApprovalDrifted otherwise."""
    request = (
        ApprovalRequest.objects.select_for_update(of=("self",))
        .select_related("environment")
        .filter(pk=request_id)
        .first()
    )
    if request is None:
        raise ApprovalInvalid(f"There is no approval request #{request_id}.")
    if request.action != action or request.environment_id != environment.pk:
        raise ApprovalInvalid(
            f"Request #{request.pk} approves {request.action} in {request.environment.slug}, "
            f"not {action} in {environment.slug}."
        )
    if request.status != Status.APPROVED:
        raise ApprovalInvalid(
            f"Request #{request.pk} is {request.get_status_display().lower()}, not approved."
        )
    if timezone.now() >= request.expires_at:
        raise ApprovalInvalid(
            f"Request #{request.pk} expired at {request.expires_at:%Y-%m-%d %H:%M} UTC."
        )
    if as_stored(parameters) != request.parameters:
        raise ApprovalInvalid(
            f"Request #{request.pk} (revision {request.revision}) approves other parameters."
        )
    items = list(request.checklist.all())
    if preview_hash_of(request, items) != request.preview_hash:
        raise ApprovalInvalid(f"Request #{request.pk} changed without a new revision.")
    gos = valid_gos(request)
    if not gos or any(g.preview_hash != request.preview_hash for g in gos):
        raise ApprovalInvalid(
            f"Request #{request.pk} has no valid go on revision {request.revision}."
        )
    current = requestable.preview_compute(action, environment, request.parameters)
    changes = requestable.preview_drift(request.preview, as_stored(current))
    if changes:
        raise ApprovalDrifted(
            f"The state changed since request #{request.pk} was approved: "
            f"{'; '.join(changes)}. Edit the request to refresh its preview, and ask again.",
            changes=changes,
        )
    return ApprovalFacts(
        request_id=request.pk,
        revision=request.revision,
        approvers=tuple(g.decider for g in gos),
        urgency=request.urgency,
        preview=request.preview,
        preview_hash=request.preview_hash,
    )


# --- Execution ------------------------------------------------------------------------------


def _inside_window(request: ApprovalRequest, now: dt.datetime) -> bool:
    return any(start <= now < end for start, end in request.windows)


class ExecutorRefused(PermissionDenied):
    """A refusal the policy cannot see (an agent, an unschedulable action); the service
    records it."""

    def __init__(self, why: str) -> None:
        super().__init__(f"Refused: {why}.")
        self.why = why


@dataclass(frozen=True)
class ExecutionPlan:
    """What executing a request would do now, as approval_execute_check read it."""

    owner: requestable.Requestable
    current: dict[str, Any]  # the preview computed now
    gos: list[Decision]

    @property
    def reduces(self) -> bool:
        return bool(self.current["reduces_exposure"])

    @property
    def first_approver(self) -> User | None:
        return self.gos[0].decider if self.gos else None


def executor_refusal(actor: User) -> str | None:
    if actor.is_agent:
        return "agent accounts never execute a request; a person does"
    return None


def approval_execute_check(
    *, actor: User, request: ApprovalRequest, now: dt.datetime
) -> ExecutionPlan:
    """What approval_execute checks before the policy, reading only: raises ExecutorRefused
    or NotApproved, else answers with what executing would do now."""
    why = executor_refusal(actor)
    if why is not None:
        raise ExecutorRefused(why)
    if request.status != Status.APPROVED:
        raise NotApproved(
            f"Request #{request.pk} is {request.get_status_display().lower()}: only an "
            "approved request is executed."
        )
    if now >= request.expires_at:
        raise NotApproved(
            f"Request #{request.pk} expired at {request.expires_at:%Y-%m-%d %H:%M} UTC."
        )
    owner = requestable.get(request.action)
    if actor.is_system:
        if not owner.schedulable:
            raise ExecutorRefused(f"{request.action} is executed by a person, never on a schedule")
        if not _inside_window(request, now):
            raise NotApproved(f"Request #{request.pk} is not inside its window now.")
    current = requestable.preview_compute(request.action, request.environment, request.parameters)
    return ExecutionPlan(owner=owner, current=current, gos=valid_gos(request))


def blackout_check(
    request: ApprovalRequest, *, reduces: bool, now: dt.datetime
) -> BlackoutWindow | None:
    """The blackout window open now (or None); BlackoutOpen when it holds this execution
    back (an increase of exposure that is not an approved emergency)."""
    blackout = blackout_open(request.environment, now)
    if blackout is not None and not reduces and not request.is_emergency:
        raise BlackoutOpen(
            f"A blackout window is open in {request.environment.slug} ({blackout}: "
            f"{blackout.reason}): only an approved emergency request may increase exposure now.",
            blackout=blackout.pk,
        )
    return blackout


def approval_execute_refusal(
    *, actor: User, request: ApprovalRequest, now: dt.datetime | None = None
) -> str | None:
    """Why approval_execute would refuse this person now, or None: the same rules (the
    service's checks, the policy for the requested action, blackout windows, drift from
    the preview), without side effects, so a page can say so before anyone clicks."""
    now = now or timezone.now()
    try:
        plan = approval_execute_check(actor=actor, request=request, now=now)
        verdict = decide(
            actor,
            plan.owner.policy_action,
            request.environment,
            reduces_exposure=plan.reduces,
            approved_by=plan.first_approver,
        )
        if not verdict.allowed:
            return f"Refused: {verdict.why}."
        blackout_check(request, reduces=plan.reduces, now=now)
    except PermissionDenied as refusal:
        return str(refusal)
    except Conflict as conflict:
        return conflict.detail
    except ValidationError as invalid:
        return " ".join(invalid.messages)
    changes = requestable.preview_drift(request.preview, as_stored(plan.current))
    if changes:
        return (
            f"The state changed since request #{request.pk} was approved: {'; '.join(changes)}. "
            "Edit the request to refresh its preview, and ask again."
        )
    return None


@transaction.atomic
def approval_execute(
    *, actor: User, request: ApprovalRequest | int, reason: str = ""
) -> ApprovalRequest:
    """Carry out an approved request through the owning app's ordinary service.

    By a person holding the action's own permission there (the requester too, once others
    approved), never an agent; by the system actor only for a schedulable action inside its
    window. Re-checks expiry, revision, blackout windows and drift.
    """
    if not isinstance(request, ApprovalRequest):
        request = ApprovalRequest.objects.select_related("environment").get(pk=request)
    reason = (reason or "").strip()
    why = executor_refusal(actor)
    if why is not None:
        raise refuse(
            actor=actor, action=actions.APPROVAL_EXECUTE, request=request, why=why, reason=reason
        )
    if not reason:
        raise ValidationError({"reason": "Say why this is executed now."})
    request = request_lock(request)
    environment = request.environment
    now = timezone.now()
    try:
        plan = approval_execute_check(actor=actor, request=request, now=now)
    except ExecutorRefused as refusal:
        raise refuse(
            actor=actor,
            action=actions.APPROVAL_EXECUTE,
            request=request,
            why=refusal.why,
            reason=reason,
        ) from None
    owner, reduces = plan.owner, plan.reduces
    authorize(
        actor,
        owner.policy_action,
        environment,
        reduces_exposure=reduces,
        approved_by=plan.first_approver,
        target=request_target(request),
        requested={"request": request.pk, "revision": request.revision},
        reason=reason,
    )
    blackout = blackout_check(request, reduces=reduces, now=now)
    verified = requestable.approval_verify(
        request.pk, action=request.action, environment=environment, parameters=request.parameters
    )
    result = owner.executor(
        actor=actor,
        environment=environment,
        parameters=request.parameters,
        approval=verified,
        reason=reason,
    )
    before = request_view(request)
    request.status, request.result = Status.EXECUTED, as_stored(result)
    request.executed_at = request.closed_at = request.updated_at = now
    request.executed_by = actor
    request.suspended_reason = ""
    request.save()
    review = (
        PostReview.objects.create(request=request, opened_at=now) if request.is_emergency else None
    )
    audit_record(
        actor=actor,
        action=actions.APPROVAL_EXECUTE,
        environment=environment,
        target=request_target(request),
        before=before,
        after={
            **request_view(request),
            "approval": verified.audit_link(),
            "result": request.result,
            "blackout": blackout_view(blackout) if blackout is not None else None,
            "post_review": review.pk if review else None,
        },
        reason=reason,
    )
    notify_executed(request, actor=actor, approvers=list(verified.approvers))
    return request


@transaction.atomic
def _approval_suspend(*, request_id: int, why: str) -> None:
    system = User.system()
    request = request_lock(request_id)
    if request.status != Status.APPROVED or request.suspended_reason:
        return
    authorize(system, actions.APPROVAL_SUSPEND, request.environment, target=request_target(request))
    request.suspended_reason = why
    request.save(update_fields=["suspended_reason"])
    audit_record(
        actor=system,
        action=actions.APPROVAL_SUSPEND.name,
        environment=request.environment,
        target=request_target(request),
        after={"request": request.pk, "revision": request.revision, "suspended_reason": why},
    )


def approval_requests_run_scheduled(*, now: dt.datetime | None = None) -> list[int]:
    """The beat task's body: the system actor executes approved, schedulable requests inside
    their window; one that cannot run (drift, blackout) stays approved, suspended with the
    reason. Returns the ids executed."""
    now = now or timezone.now()
    schedulable = [r.name for r in requestable.registered() if r.schedulable]
    due = list(
        ApprovalRequest.objects.filter(
            status=Status.APPROVED, suspended_reason="", action__in=schedulable
        )
        .filter(
            Q(window_start__lte=now, window_end__gt=now)
            | Q(alternative_window_start__lte=now, alternative_window_end__gt=now)
        )
        .order_by("window_start", "id")
        .values_list("pk", flat=True)
    )
    executed = []
    system = User.system()
    for pk in due:
        try:
            with transaction.atomic():
                taken = (
                    ApprovalRequest.objects.select_for_update(skip_locked=True)
                    .filter(pk=pk, status=Status.APPROVED, suspended_reason="")
                    .first()
                )
                if taken is None:
                    continue  # another worker has it, or it changed since
                window = next(f"{s:%Y-%m-%d %H:%M}" for s, e in taken.windows if s <= now < e)
                approval_execute(
                    actor=system, request=taken, reason=f"Scheduled window starting {window} UTC"
                )
            executed.append(pk)
        except (Conflict, PermissionDenied, ValidationError) as error:
            why = getattr(error, "detail", None) or "; ".join(
                getattr(error, "messages", None) or [str(error)]
            )
            logger.info("approvals.scheduled_suspended request=%s: %s", pk, why)
            _approval_suspend(request_id=pk, why=why)
    return executed


def approval_requests_expire(*, now: dt.datetime | None = None) -> list[int]:
    """The beat task's body: open requests past their expiry become expired. Returns ids."""
    now = now or timezone.now()
    system = User.system()
    expired = []
    with transaction.atomic():
        authorize(system, actions.APPROVAL_EXPIRE)
        for request in (
            ApprovalRequest.objects.select_for_update(of=("self",), skip_locked=True)
            .select_related("environment", "requested_by")
            .filter(status__in=OPEN_STATUSES, expires_at__lte=now)
            .order_by("id")
        ):
            before = request_view(request)
            request.status, request.closed_at = Status.EXPIRED, now
            request.save(update_fields=["status", "closed_at"])
            audit_record(
                actor=system,
                action=actions.APPROVAL_EXPIRE.name,
                environment=request.environment,
                target=request_target(request),
                before=before,
                after=request_view(request),
                reason=f"Expired at {request.expires_at:%Y-%m-%d %H:%M} UTC",
            )
            lifecycle_tell(request, Status.EXPIRED, actor=system)
            notify_expired(request, actor=system)
            expired.append(request.pk)
    return expired


@transaction.atomic
def post_review_close(
    *, actor: User, review: PostReview, notes: str, reason: str = ""
) -> PostReview:
    """A release manager closes an executed emergency's post-review with notes."""
    notes = (notes or "").strip()
    if not notes:
        raise ValidationError({"notes": "Write what the review found."})
    request = review.request
    authorize(
        actor,
        actions.POST_REVIEW_CLOSE,
        request.environment,
        target=Target.of(review),
        requested={"request": request.pk},
        reason=reason,
    )
    review = PostReview.objects.select_for_update().get(pk=review.pk)
    if not review.is_open:
        raise Conflict(f"The post-review of request #{request.pk} is already closed.")
    review.closed_at, review.closed_by, review.notes = timezone.now(), actor, notes
    review.save()
    audit_record(
        actor=actor,
        action=actions.POST_REVIEW_CLOSE.name,
        environment=request.environment,
        target=Target.of(review),
        after={"request": request.pk, "notes": notes, "closed_at": review.closed_at},
        reason=reason,
    )
    return review
