"""What approvals tells people: each call writes outbox rows in the calling service's
transaction (releasecontrol/notifications), never sends anything itself.

Events: approval.requested, approval.decided (adjust, no-go, or a go short of approval),
approval.approved (the go that approved it), approval.executed, approval.expired.
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from releasecontrol.models import User
from releasecontrol.notifications.services import notification_enqueue

from .models import ApprovalRequest, Decision, Status

REQUESTED = "approval.requested"
DECIDED = "approval.decided"
APPROVED = "approval.approved"
EXECUTED = "approval.executed"
EXPIRED = "approval.expired"


def request_link(request: ApprovalRequest) -> str:
    return reverse("approvals:detail", args=[request.pk])


def _request_data(request: ApprovalRequest, approvals: int | None) -> dict[str, Any]:
    return {
        "id": request.pk,
        "title": request.title,
        "action": request.action,
        "parameters": request.parameters,
        "status": request.status,
        "revision": request.revision,
        "preview_hash": request.preview_hash,
        "urgency": request.urgency,
        "risk": request.risk,
        "requested_by": request.requested_by.username,
        "window": {"start": request.window_start, "end": request.window_end},
        "expires_at": request.expires_at,
        "approvals": approvals,
        "approvals_required": request.approvals_required,
    }


def _enqueue(
    event: str,
    request: ApprovalRequest,
    *,
    actor: User,
    headline: str,
    details: list[str],
    approvals: int | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    environment = request.environment
    link = request_link(request)
    subject = f"[{environment.slug}] Request #{request.pk} {headline}: {request.title}"
    lines = [
        f"Request #{request.pk} in {environment.name} {headline}.",
        "",
        f"Title: {request.title}",
        f"Action: {request.action} (revision {request.revision})",
        f"Urgency: {request.urgency}, risk: {request.risk}",
        f"Status: {request.get_status_display()}",
        *details,
    ]
    notification_enqueue(
        environment=environment,
        event=event,
        subject=subject,
        text="\n".join(lines),
        payload={
            "request": _request_data(request, approvals),
            "actor": actor.username,
            **(extra or {}),
        },
        link=link,
    )


def notify_requested(request: ApprovalRequest, *, actor: User) -> None:
    _enqueue(
        REQUESTED,
        request,
        actor=actor,
        headline="was requested",
        details=[f"Requested by {actor.username}; expires {request.expires_at:%Y-%m-%d %H:%M} UTC"],
        approvals=0,
    )


def notify_decided(
    request: ApprovalRequest, *, actor: User, decision: Decision, approvals: int
) -> None:
    approved = request.status == Status.APPROVED
    verdict = decision.get_decision_display()
    said = f": {decision.comment}" if decision.comment else ""
    _enqueue(
        APPROVED if approved else DECIDED,
        request,
        actor=actor,
        headline="is approved" if approved else f"got {verdict} from {actor.username}",
        details=[
            f"{verdict} by {actor.username}{said}",
            f"Approvals: {approvals} of {request.approvals_required}",
        ],
        approvals=approvals,
        extra={
            "decision": {
                "decision": decision.decision,
                "by": actor.username,
                "comment": decision.comment,
                "revision": decision.revision,
            }
        },
    )


def notify_executed(request: ApprovalRequest, *, actor: User, approvers: list[User]) -> None:
    names = ", ".join(a.username for a in approvers)
    _enqueue(
        EXECUTED,
        request,
        actor=actor,
        headline=f"was executed by {actor.username}",
        details=[f"Approved by {names}"],
        approvals=len(approvers),
        extra={"approvers": [a.username for a in approvers], "result": request.result},
    )


def notify_expired(request: ApprovalRequest, *, actor: User) -> None:
    _enqueue(
        EXPIRED,
        request,
        actor=actor,
        headline="expired",
        details=[f"Expired at {request.expires_at:%Y-%m-%d %H:%M} UTC without being executed"],
    )
