"""What stands between a person or automation and a release step: the policy (or, where a
request would be heard, the request to make instead), the approval in hand, and the
release's status. rollouts/services.py calls these before changing anything."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied

from flags.guards import (
    REQUEST_ENDPOINT,
    ApprovalRequired,
    approval_required,
    is_requestable,
    may_request,
    request_to_make,
)
from releasecontrol import requestable
from releasecontrol.audit import audit_record_denial
from releasecontrol.models import User
from releasecontrol.policy import Action, authorize
from releasecontrol.requestable import VerifiedApproval

from .driving import ReleaseStateConflict, release_target
from .models import Release


def needs_request(release: Release) -> bool:
    return release.environment.approvals_required > 0


def step_refused(release: Release, step: str, allowed: str) -> ReleaseStateConflict:
    return ReleaseStateConflict(
        f"Release #{release.pk} is {release.get_status_display().lower()}: {step} needs it "
        f"{allowed}.",
        release_status=release.status,
    )


def step_approval_required(
    actor: User, release: Release, action: Action, parameters: dict, reason: str
) -> ApprovalRequired:
    """Recorded as denied; the 409 names the request to make."""
    why = (
        f"{release.environment.name} requires an approved {action.name} request "
        f"({release.environment.approvals_required} go(s) from people other than the requester)."
    )
    audit_record_denial(
        actor=actor,
        action=action.name,
        environment=release.environment,
        target=release_target(release),
        after={"refused": why, "requested": parameters},
        reason=reason,
    )
    return ApprovalRequired(
        f"Refused: {why} Ask for a go: {REQUEST_ENDPOINT} with the request below; once "
        "approved, someone who may drive releases there executes it.",
        request=request_to_make(action.name, release.environment, parameters),
    )


def step_approval_verified(
    approval: VerifiedApproval | int | None, release: Release, action: str, parameters: dict
) -> VerifiedApproval | None:
    if approval is None:
        return None
    return requestable.approval_verify(
        approval, action=action, environment=release.environment, parameters=parameters
    )


def step_authorize(
    actor: User,
    action: Action,
    release: Release,
    reason: str,
    *,
    approved_by: User | None = None,
    requested: Any = None,
    request_instead: dict | None = None,
) -> None:
    """The policy's answer. Given `request_instead` (the parameters of the step's request,
    when the release's status allows the step and no approval is in hand), one refused who
    may ask for it here is answered 409 naming the request to make; the refusal is recorded
    as denied all the same."""
    try:
        authorize(
            actor,
            action,
            release.environment,
            approved_by=approved_by,
            target=release_target(release),
            requested=requested or {"release": release.pk},
            reason=reason,
        )
    except PermissionDenied as refusal:
        if (
            request_instead is not None
            and is_requestable(action.name)
            and may_request(actor, release.environment)
        ):
            raise approval_required(
                str(refusal),
                action=action.name,
                environment=release.environment,
                parameters=request_instead,
            ) from None
        raise
