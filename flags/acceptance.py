"""Accepting a non-boolean flag's values where they need it (production): until exactly its
on- and off-value are accepted there, evaluation answers FLAG_NOT_FOUND and callers keep their
code default. A flag defined by someone with production rights is accepted at creation;
any other is accepted only through an approved `flag.accept` request (DESIGN.md, "Who needs a
request"), whoever executes it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from releasecontrol.audit import audit_record
from releasecontrol.models import Environment, User
from releasecontrol.policy import decide
from releasecontrol.requestable import VerifiedApproval

from . import actions
from .guards import (
    approval_audit_link,
    approval_verified,
    authorize_change,
    blackout_check,
    require_approval,
)
from .models import Flag, FlagState
from .writes import bump_flags_version, flag_target, lock_environment, lock_state, stale_edit


def may_accept(actor: User, environment: Environment) -> bool:
    """Whether a flag this actor defines is accepted here at creation (they hold flag.accept
    there); anyone else's needs an approved request."""
    return decide(actor, actions.FLAG_ACCEPT, environment).allowed


def mark_accepted(state: FlagState, flag: Flag, actor: User, now: datetime) -> None:
    state.values_accepted_at, state.values_accepted_by = now, actor
    state.accepted_on_value, state.accepted_off_value = flag.on_value, flag.off_value


@transaction.atomic
def flag_accept(
    *,
    actor: User,
    flag: Flag,
    environment: Environment,
    expected_version: int | None,
    reason: str,
    approval: VerifiedApproval | int | None = None,
) -> FlagState:
    """Accept a non-boolean flag's values (exactly its on- and off-value) in an environment
    that needs acceptance (production): from then on evaluation there answers with them.

    Only with an approved `flag.accept` request for this flag (`approval`, a request id or a
    VerifiedApproval, re-verified here), executed by someone holding flag.accept there
    (release managers and on-call; agents never), or by the system actor at the request's
    window. Without one it is refused for everyone and recorded as denied: whoever may
    request (request_changes there) gets ApprovalRequired (409) naming the request to make,
    anyone else PermissionDenied. Inside a blackout window only an approved emergency
    request accepts. Idempotent: when these exact values are already accepted it changes
    nothing and returns the state, whatever `expected_version` says (a retry after success
    is not an error). Otherwise a stale `expected_version` raises StaleEdit (409). Bumps the
    state's version and the environment's flags_version; audited with the values and the
    approval behind them.
    """
    requested = {
        "on_value": flag.on_value,
        "off_value": flag.off_value,
        "version": expected_version,
    }
    environment = lock_environment(environment)
    flag = Flag.objects.get(pk=flag.pk)  # the values as stored now, not as the caller read them
    target = flag_target(flag)
    parameters = {"flag": flag.key}
    state = lock_state(flag, environment)
    verified = approval_verified(
        approval, action=actions.FLAG_ACCEPT.name, environment=environment, parameters=parameters
    )
    authorize_change(
        actor,
        actions.FLAG_ACCEPT.name,
        environment,
        reduces_exposure=False,
        approval=verified,
        parameters=parameters,
        target=target,
        requested=requested,
        reason=reason,
    )
    if not flag.needs_acceptance_in(environment):
        why = (
            "a boolean flag's values are always true and false"
            if flag.type == "boolean"
            else f"{environment.slug} serves every flag's values as defined"
        )
        raise ValidationError({"flag": f"Nothing to accept: {why}."})
    if state.serves_values_of(flag):
        return state
    blackout_check(environment, approval=verified)
    require_approval(
        actor,
        actions.FLAG_ACCEPT.name,
        environment,
        why=f"Accepting {flag.key}'s values in {environment.name} needs an approved request, "
        "whoever accepts them.",
        approval=verified,
        parameters=parameters,
        target=target,
        requested=requested,
        reason=reason,
    )
    if expected_version is not None and expected_version != state.version:
        raise stale_edit(flag, environment, state, expected_version)
    if not reason.strip():
        raise ValidationError({"reason": "Say why these values are right for production."})
    before = {
        "accepted": _accepted_view(state),
        "version": state.version,
    }
    now = timezone.now()
    mark_accepted(state, flag, actor, now)
    state.version += 1
    state.updated_at, state.updated_by = now, actor
    state.save()
    bump_flags_version(environment)
    audit_record(
        actor=actor,
        action=actions.FLAG_ACCEPT.name,
        environment=environment,
        target=target,
        before=before,
        after={
            "accepted": _accepted_view(state),
            "version": state.version,
            **approval_audit_link(verified),
        },
        reason=reason,
    )
    return state


def _accepted_view(state: FlagState) -> dict[str, Any] | None:
    accepted = state.accepted_values
    if accepted is None:
        return None
    return {"on_value": accepted[0], "off_value": accepted[1]}
