"""What the emergency rollback tests build: flags on in an environment, live releases driving
some of them, and a rollback.restore request taken through the approvals services."""

from __future__ import annotations

from approvals.decisions import approval_decide
from approvals.execution import approval_execute
from approvals.models import ApprovalRequest
from approvals.services import approval_request_create, checklist_item_set
from flags.models import Flag, FlagState
from flags.services import flag_create, flag_state_set
from releasecontrol.models import Environment, User
from rollouts.models import Rollback
from tests.rollouts.factories import ReleaseFactory, ReleaseFlagFactory, StageFactory

ON = {
    "new-checkout": {"mode": "full"},
    "calling": {"mode": "percentage", "percentage": 20, "allowlist": ["vip-1"]},
    "ocr": {"mode": "allowlist", "allowlist": ["pilot-7"]},
}


def flags_on(actor: User, environment: Environment, states: dict | None = None) -> list[Flag]:
    flags = []
    for key, state in (states or ON).items():
        flag = Flag.objects.filter(key=key).first() or flag_create(
            actor=actor, key=key, name=key, tags=[key.split("-")[0]]
        )
        flag_state_set(actor=actor, flag=flag, environment=environment, reason="go", **state)
        flags.append(flag)
    return flags


def live_release(environment: Environment, flag: Flag, *, status="in_progress", name="checkout"):
    """A release at its second stage (canary 5%) driving `flag`."""
    release = ReleaseFactory(
        environment=environment, status=status, current_stage_index=1, name=name, version="2.4.0"
    )
    StageFactory(release=release, index=0, name="infrastructure", mode="off", percentage=0)
    StageFactory(release=release, index=1, name="canary", mode="percentage", percentage=5)
    ReleaseFlagFactory(release=release, flag=flag, environment=environment, live=True)
    return release


def mode_of(key: str, environment: Environment) -> str:
    return FlagState.objects.get(flag__key=key, environment=environment).mode


def restore_request(
    rollback: Rollback, flags: list[str], *, requester: User, approver: User
) -> ApprovalRequest:
    """A rollback.restore request for these flags, its checklist complete, with a go."""
    request = approval_request_create(
        actor=requester,
        environment=rollback.environment,
        action="rollback.restore",
        parameters={"rollback": rollback.pk, "flags": flags},
        title=f"Restore from rollback {rollback.pk}",
    )
    for item in request.checklist.filter(required=True):
        checklist_item_set(actor=requester, item=item, checked=True, evidence="errors back to 0.1%")
    request = ApprovalRequest.objects.get(pk=request.pk)
    return approval_decide(
        actor=approver, request=request, decision="go", preview_hash=request.preview_hash
    )


def restore_executed(request: ApprovalRequest, executor: User) -> ApprovalRequest:
    return approval_execute(actor=executor, request=request.pk, reason="fix deployed, errors flat")
