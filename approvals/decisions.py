"""Go, adjust, no-go: who may decide a request, and when it is approved."""

from __future__ import annotations

import datetime as dt

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from releasecontrol.audit import audit_record
from releasecontrol.errors import Conflict
from releasecontrol.models import User
from releasecontrol.policy import authorize, decide

from . import actions
from .models import ApprovalRequest, Decision, DecisionKind, Status
from .notify import notify_decided
from .revisions import (
    RequestClosed,
    ensure_open,
    lifecycle_tell,
    refuse,
    request_lock,
    request_target,
    request_view,
)


class StaleHash(Conflict):
    code = "stale_preview"


def valid_gos(request: ApprovalRequest) -> list[Decision]:
    """The gos that count: this revision's, not void, oldest first."""
    return list(
        request.decisions.filter(decision=DecisionKind.GO, void=False, revision=request.revision)
        .select_related("decider")
        .order_by("id")
    )


def checklist_incomplete(request: ApprovalRequest) -> list[str]:
    """The required items not yet checked (evidence is enforced when an item is checked)."""
    return [
        f"{item.section}: {item.text}"
        for item in request.checklist.all()
        if item.required and not item.checked
    ]


class DeciderRefused(PermissionDenied):
    """A refusal the policy cannot see (who asked, who edited); the service records it."""

    def __init__(self, why: str) -> None:
        super().__init__(f"Refused: {why}.")
        self.why = why


def decider_refusal(actor: User, request: ApprovalRequest) -> str | None:
    """Why this person never decides this request, whatever their role, or None."""
    if not actor.is_human:
        # The policy already refuses agents and the system; this holds whatever it says.
        return "only a person decides a request"
    if actor.pk == request.requested_by_id:
        return "the requester never decides their own request"
    if any(editor.pk == actor.pk for editor in request.editors.all()):
        return "someone who edited a request never decides it"
    return None


def approval_decide_check(
    *,
    actor: User,
    request: ApprovalRequest,
    decision: str,
    now: dt.datetime,
    preview_hash: str | None = None,
) -> None:
    """Everything approval_decide checks after the policy, reading only: raises
    DeciderRefused, RequestClosed, StaleHash (when a hash is given), Conflict (a second go)
    or ValidationError (a go on an incomplete checklist)."""
    why = decider_refusal(actor, request)
    if why is not None:
        raise DeciderRefused(why)
    ensure_open(request, now=now)
    if request.status != Status.PENDING:
        raise RequestClosed(
            f"Request #{request.pk} is {request.get_status_display().lower()}, not pending: "
            "only a pending request is decided."
        )
    if preview_hash is not None and preview_hash != request.preview_hash:
        raise StaleHash(
            f"Request #{request.pk} changed since you read it (now revision {request.revision}, "
            f"hash {request.preview_hash[:12]}…): read it again before deciding.",
            revision=request.revision,
            preview_hash=request.preview_hash,
        )
    if decision == DecisionKind.GO:
        if any(g.decider_id == actor.pk for g in valid_gos(request)):
            raise Conflict(f"You already gave revision {request.revision} your go.")
        missing = checklist_incomplete(request)
        if missing:
            raise ValidationError(
                {"checklist": [f"Not checked yet: {text}" for text in missing]},
            )


def approval_decide_refusal(
    *, actor: User, request: ApprovalRequest, decision: str, now: dt.datetime | None = None
) -> str | None:
    """Why approval_decide would refuse this decision by this person now, or None: the same
    rules (the policy's, then the service's own), without side effects, so a page can say
    so before anyone clicks."""
    verdict = decide(actor, actions.APPROVAL_DECIDE, request.environment)
    if not verdict.allowed:
        return f"Refused: {verdict.why}."
    try:
        approval_decide_check(
            actor=actor, request=request, decision=decision, now=now or timezone.now()
        )
    except PermissionDenied as refusal:
        return str(refusal)
    except Conflict as conflict:
        return conflict.detail
    except ValidationError as invalid:
        unchecked = getattr(invalid, "message_dict", {}).get("checklist")
        if unchecked:
            # The page shows the checklist itself: one line saying how much is open.
            return (
                f"A go needs the whole checklist: {len(unchecked)} required item(s) are not "
                "checked yet (see the checklist below)."
            )
        return " ".join(invalid.messages)
    return None


@transaction.atomic
def approval_decide(
    *,
    actor: User,
    request: ApprovalRequest,
    decision: str,
    preview_hash: str,
    comment: str = "",
    reason: str = "",
) -> ApprovalRequest:
    """A person's go, adjust or no-go on the revision whose preview hash they saw.

    A go counts from an active human holding approve_changes on the environment who neither
    asked for nor edited the request (superusers included), once per revision. Approved when
    the valid gos reach what the environment requires now (one more for an emergency) and
    every required checklist item is checked. Adjust sends it back; no-go rejects it.
    """
    if decision not in DecisionKind.values:
        raise ValidationError({"decision": f"must be one of {', '.join(DecisionKind.values)}"})
    if not isinstance(preview_hash, str) or not preview_hash:
        raise ValidationError({"preview_hash": "Name the preview hash you decided on."})
    comment = (comment or "").strip()
    if decision != DecisionKind.GO and not comment:
        raise ValidationError({"comment": "Say what must change, or why not."})
    authorize(
        actor,
        actions.APPROVAL_DECIDE,
        request.environment,
        target=request_target(request),
        requested={"request": request.pk, "decision": decision, "preview_hash": preview_hash},
        reason=reason,
    )
    request = request_lock(request)
    now = timezone.now()
    try:
        approval_decide_check(
            actor=actor, request=request, decision=decision, preview_hash=preview_hash, now=now
        )
    except DeciderRefused as refusal:
        raise refuse(
            actor=actor,
            action=actions.APPROVAL_DECIDE.name,
            request=request,
            why=refusal.why,
            reason=reason,
        ) from None
    before = request_view(request)
    made = Decision.objects.create(
        request=request,
        revision=request.revision,
        decider=actor,
        decision=decision,
        comment=comment,
        preview_hash=preview_hash,
        created_at=now,
    )
    if decision == DecisionKind.GO:
        if request.is_emergency and request.emergency_confirmed_by_id is None:
            request.emergency_confirmed_by = actor
        gos = valid_gos(request)
        if len(gos) >= request.approvals_required:
            request.status, request.approved_at = Status.APPROVED, now
    elif decision == DecisionKind.ADJUST:
        request.status = Status.CHANGES_REQUESTED
    else:
        request.status, request.closed_at = Status.REJECTED, now
    request.updated_at = now
    request.save()
    approvals = len(valid_gos(request))
    audit_record(
        actor=actor,
        action=actions.APPROVAL_DECIDE.name,
        environment=request.environment,
        target=request_target(request),
        before=before,
        after={
            "decision": decision,
            "decision_id": made.pk,
            "comment": comment,
            "revision": request.revision,
            "preview_hash": preview_hash,
            "status": request.status,
            "approvals": approvals,
            "approvals_required": request.approvals_required,
        },
        reason=reason,
    )
    if request.status == Status.REJECTED:
        lifecycle_tell(request, Status.REJECTED, actor=actor)
    notify_decided(request, actor=actor, decision=made, approvals=approvals)
    return request
