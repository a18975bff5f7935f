"""What every approvals service shares: the preview hash, expiry, a new revision, locking a
request, and refusals the policy cannot see."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from releasecontrol import requestable
from releasecontrol.audit import Target, audit_record_denial, canonical_json
from releasecontrol.errors import Conflict
from releasecontrol.models import User

from .models import OPEN_STATUSES, ApprovalRequest, ChecklistItem, Decision, DecisionKind, Status


class RequestClosed(Conflict):
    code = "request_closed"


def request_ttl() -> dt.timedelta:
    return dt.timedelta(hours=getattr(settings, "APPROVAL_REQUEST_TTL_HOURS", 72))


def expiry_of(request: ApprovalRequest) -> dt.datetime:
    """max(created + TTL, the latest window end): not reset by edits."""
    ends = [end for _, end in request.windows]
    return max([request.created_at + request_ttl(), *ends])


def as_stored(value: Any) -> Any:
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def checklist_state(items: list[ChecklistItem]) -> list[dict[str, Any]]:
    return [
        {
            "section": i.section,
            "text": i.text,
            "required": i.required,
            "evidence_required": i.evidence_required,
            "checked": i.checked,
            "evidence": i.evidence,
        }
        for i in items
    ]


def preview_hash_of(request: ApprovalRequest, items: list[ChecklistItem]) -> str:
    """sha256 of the canonical JSON (the audit chain's) of what a decision is made on."""
    return hashlib.sha256(
        canonical_json(
            as_stored(
                {
                    "action": request.action,
                    "environment": request.environment.slug,
                    "parameters": request.parameters,
                    "preview": request.preview,
                    "checklist": checklist_state(items),
                    "revision": request.revision,
                }
            )
        )
    ).hexdigest()


def lifecycle_tell(request: ApprovalRequest, event: str, *, actor: User) -> None:
    """Tell the app that owns the request's action that it opened or closed unexecuted."""
    requestable.request_lifecycle(
        action=request.action,
        request_id=request.pk,
        environment=request.environment,
        parameters=request.parameters,
        event=event,
        actor=actor,
    )


def request_target(request: ApprovalRequest) -> Target:
    return Target("approvalrequest", str(request.pk), request.title)


def request_view(request: ApprovalRequest) -> dict[str, Any]:
    """What audit events record of a request."""
    return {
        "id": request.pk,
        "action": request.action,
        "parameters": request.parameters,
        "title": request.title,
        "urgency": request.urgency,
        "risk": request.risk,
        "window": [request.window_start, request.window_end],
        "alternative_window": [request.alternative_window_start, request.alternative_window_end],
        "status": request.status,
        "revision": request.revision,
        "preview_hash": request.preview_hash,
        "expires_at": request.expires_at,
    }


def request_lock(request: ApprovalRequest | int) -> ApprovalRequest:
    """The request re-read under a row lock (decisions, edits and executions serialize here)."""
    pk = request.pk if isinstance(request, ApprovalRequest) else request
    return (
        ApprovalRequest.objects.select_for_update(of=("self",))
        .select_related("environment", "requested_by")
        .get(pk=pk)
    )


def refuse(
    *, actor: User, action: str, request: ApprovalRequest, why: str, reason: str = ""
) -> PermissionDenied:
    """Record a refusal the policy cannot see (who asked, who edited) and return the error."""
    audit_record_denial(
        actor=actor,
        action=action,
        environment=request.environment,
        target=request_target(request),
        after={"refused": why, "requested": {"request": request.pk}},
        reason=reason,
    )
    return PermissionDenied(f"Refused: {why}.")


def ensure_open(request: ApprovalRequest, *, now: dt.datetime | None = None) -> None:
    if request.status not in OPEN_STATUSES:
        raise RequestClosed(f"Request #{request.pk} is {request.get_status_display().lower()}.")
    if (now or timezone.now()) >= request.expires_at:
        raise RequestClosed(
            f"Request #{request.pk} expired at {request.expires_at:%Y-%m-%d %H:%M} UTC."
        )


def save_with_hash(request: ApprovalRequest) -> None:
    """Save, then hash what the database gives back (jsonb may write a number differently
    from how it was passed, and the verifier re-hashes what it reads)."""
    request.save()
    request.refresh_from_db(fields=["parameters", "preview"])
    request.preview_hash = preview_hash_of(request, list(request.checklist.all()))
    request.save(update_fields=["preview_hash"])


def new_revision(request: ApprovalRequest, *, actor: User, now: dt.datetime) -> None:
    """An edit: the next revision, a fresh preview and hash; every earlier go is voided.

    The caller holds the request's lock; this saves it.
    """
    request.revision += 1
    request.preview = requestable.preview_compute(
        request.action, request.environment, request.parameters
    )
    Decision.objects.filter(request=request, decision=DecisionKind.GO, void=False).update(
        void=True, voided_at=now
    )
    if request.status in (Status.APPROVED, Status.CHANGES_REQUESTED):
        request.status = Status.PENDING
    request.approved_at = None
    request.suspended_reason = ""
    request.updated_at = now
    request.expires_at = expiry_of(request)
    if actor.pk != request.requested_by_id:
        request.editors.add(actor)
    save_with_hash(request)
