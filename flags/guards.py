"""What stands between a flag change and the change, besides its version and kill switches:
the policy (or, where a request would be heard, the request to make instead), the approval
that covers the change, and blackout windows.

The approval is re-read here, in the service's transaction, through core's verifier slot
(releasecontrol.requestable): flags knows nothing of the app that holds the requests.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied

from releasecontrol import requestable, roles
from releasecontrol.audit import Target, audit_record_denial
from releasecontrol.errors import Conflict
from releasecontrol.models import Environment, User
from releasecontrol.policy import APP_LABEL, authorize
from releasecontrol.requestable import VerifiedApproval

# Where the request is made (the JSON API; the board links to its page).
REQUEST_ENDPOINT = "POST /api/v1/approvals"
# The urgency whose approval lets an increase through a blackout window.
EMERGENCY = "emergency"


class ApprovalRequired(Conflict):
    """The change needs an approved request first; `request` names the request to make."""

    code = "approval_required"


class BlackoutOpen(Conflict):
    code = "blackout"


def may_request(actor: User | None, environment: Environment) -> bool:
    """Whether this actor may ask for approval of a change here (request_changes)."""
    if actor is None or not actor.pk or not actor.is_active or actor.is_system:
        return False
    if actor.is_superuser and actor.is_human:
        return True
    return actor.has_perm(f"{APP_LABEL}.{roles.REQUEST_CHANGES}", environment)


def is_requestable(action: str) -> bool:
    return any(r.name == action for r in requestable.registered())


def request_to_make(action: str, environment: Environment, parameters: dict[str, Any]) -> dict:
    """The body of the request to make (the fields of POST /api/v1/approvals that name
    the change; title, urgency, risk and the rest are the requester's to write)."""
    return {"action": action, "environment": environment.slug, "parameters": parameters}


def approval_required(
    why: str, *, action: str, environment: Environment, parameters: dict[str, Any]
) -> ApprovalRequired:
    return ApprovalRequired(
        f"{why} Ask for a go instead: {REQUEST_ENDPOINT} with the request below (on the "
        "board: Request approval). People who may approve it decide; once approved, it is "
        "executed by someone who may make the change.",
        request=request_to_make(action, environment, parameters),
    )


def approval_verified(
    approval: VerifiedApproval | int | None,
    *,
    action: str,
    environment: Environment,
    parameters: dict[str, Any],
) -> VerifiedApproval | None:
    """Re-read the approval named (a request id, or a VerifiedApproval, re-read all the same)
    in the caller's transaction: approved, unexpired, this very change, no drift (409)."""
    if approval is None:
        return None
    return requestable.approval_verify(
        approval, action=action, environment=environment, parameters=parameters
    )


def authorize_change(
    actor: User,
    action: str,
    environment: Environment,
    *,
    reduces_exposure: bool,
    approval: VerifiedApproval | None,
    parameters: dict[str, Any],
    target: Target,
    requested: Any,
    reason: str,
    plan_approved_by: User | None = None,
) -> None:
    """The policy's answer. A refusal is recorded as denied; when the actor may ask for this
    change (request_changes there, a requestable action, no approval in hand) it is answered
    409 naming the request to make, otherwise 403. The system actor acts on the approval's
    first approver, as read from the verified record, or on the approver of the plan it
    follows (`plan_approved_by`, read by the caller from a verified record)."""
    try:
        authorize(
            actor,
            action,
            environment,
            reduces_exposure=reduces_exposure,
            approved_by=approval.first_approver if approval is not None else plan_approved_by,
            target=target,
            requested=requested,
            reason=reason,
        )
    except PermissionDenied as refusal:
        if approval is None and is_requestable(action) and may_request(actor, environment):
            raise approval_required(
                str(refusal), action=action, environment=environment, parameters=parameters
            ) from None
        raise


def require_approval(
    actor: User,
    action: str,
    environment: Environment,
    *,
    why: str,
    approval: VerifiedApproval | None,
    parameters: dict[str, Any],
    target: Target,
    requested: Any,
    reason: str,
) -> None:
    """Where a change needs an approved request whoever makes it, making it without one is
    refused: recorded as denied (`why`), answered 409 with the request to make."""
    if approval is not None:
        return
    audit_record_denial(
        actor=actor,
        action=action,
        environment=environment,
        target=target,
        after={"refused": why, "requested": requested},
        reason=reason,
    )
    raise approval_required(
        f"Refused: {why}", action=action, environment=environment, parameters=parameters
    )


def increase_approval_check(
    actor: User,
    action: str,
    environment: Environment,
    *,
    approval: VerifiedApproval | None,
    parameters: dict[str, Any],
    target: Target,
    requested: Any,
    reason: str,
) -> None:
    """Where the environment requires approval for increases, an increase without one is
    refused for everyone."""
    if not environment.require_approval_for_increase:
        return
    require_approval(
        actor,
        action,
        environment,
        why=f"{environment.name} requires an approved request for every change that "
        "increases exposure.",
        approval=approval,
        parameters=parameters,
        target=target,
        requested=requested,
        reason=reason,
    )


def blackout_check(environment: Environment, *, approval: VerifiedApproval | None) -> None:
    """Inside an open blackout window nothing increases exposure (anyone, automation too),
    except an approved emergency request. Callers ask only for increases."""
    window = requestable.blackout_now(environment)
    if window is None or (approval is not None and approval.urgency == EMERGENCY):
        return
    raise BlackoutOpen(
        f"A blackout window is open in {environment.slug}: {window}. Until it ends nothing "
        "may increase exposure there except an approved emergency request; changes that "
        "reduce exposure go through.",
        blackout=window,
    )


def approval_audit_link(verified: VerifiedApproval | None) -> dict[str, Any]:
    """What a change's audit event says of the approved request behind it, if any."""
    return {"approval": verified.audit_link()} if verified is not None else {}
