"""Accepting a flag's values the only way there is: an approved `flag.accept` request,
made, checked, approved and executed through the approvals services."""

from __future__ import annotations

from approvals.decisions import approval_decide
from approvals.execution import approval_execute
from approvals.models import ApprovalRequest
from approvals.services import approval_request_create, checklist_item_set
from flags.models import Flag
from releasecontrol.models import Environment, User


def accept_request_approved(
    flag: Flag, environment: Environment, *, requester: User, approver: User
) -> ApprovalRequest:
    """A `flag.accept` request for `flag` there, its checklist complete, with `approver`'s go."""
    request = approval_request_create(
        actor=requester,
        environment=environment,
        action="flag.accept",
        parameters={"flag": flag.key},
        title=f"Accept the values of {flag.key}",
    )
    for item in request.checklist.filter(required=True):
        checklist_item_set(actor=requester, item=item, checked=True, evidence="checked by hand")
    request = ApprovalRequest.objects.get(pk=request.pk)
    return approval_decide(
        actor=approver, request=request, decision="go", preview_hash=request.preview_hash
    )


def accept_through_approval(
    flag: Flag,
    environment: Environment,
    *,
    requester: User,
    approver: User,
    executor: User,
    reason: str = "values checked with the owning team",
) -> ApprovalRequest:
    """The same request, executed by `executor`: the values are accepted."""
    request = accept_request_approved(flag, environment, requester=requester, approver=approver)
    return approval_execute(actor=executor, request=request.pk, reason=reason)
