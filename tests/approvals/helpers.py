"""Building requests in a given state through the real services."""

import datetime as dt

from approvals.decisions import approval_decide
from approvals.execution import approval_execute, approval_requests_expire
from approvals.models import ApprovalRequest
from approvals.services import approval_cancel, approval_request_create, checklist_item_set
from flags.models import FlagState
from releasecontrol.models import AuditEvent, Environment
from releasecontrol.services import environment_configure

from .requestables import FLAG_CHANGE

TEN_PERCENT = {"flag": "new-checkout", "mode": "percentage", "percentage": 10, "allowlist": []}


def env(slug: str) -> Environment:
    return Environment.objects.get(slug=slug)


def fresh(request: ApprovalRequest) -> ApprovalRequest:
    return ApprovalRequest.objects.select_related("environment").get(pk=request.pk)


def request_change(requester, slug="production", *, parameters=None, action=FLAG_CHANGE, **fields):
    fields.setdefault("title", "10% of checkout")
    fields.setdefault("checklist", "short")
    return approval_request_create(
        actor=requester,
        environment=env(slug),
        action=action,
        parameters=parameters or TEN_PERCENT,
        **fields,
    )


def complete_checklist(request, actor):
    for item in request.checklist.filter(required=True, checked=False):
        checklist_item_set(actor=actor, item=item, checked=True, evidence="412/412 passed")
    return fresh(request)


def go(request, decider, comment=""):
    request = fresh(request)
    return approval_decide(
        actor=decider,
        request=request,
        decision="go",
        preview_hash=request.preview_hash,
        comment=comment,
    )


def decide(request, decider, decision, comment="because"):
    request = fresh(request)
    return approval_decide(
        actor=decider,
        request=request,
        decision=decision,
        preview_hash=request.preview_hash,
        comment=comment,
    )


def flag_state(slug="production") -> FlagState:
    return FlagState.objects.get(flag__key="new-checkout", environment__slug=slug)


def events(action, **filters):
    return AuditEvent.objects.filter(action=action, **filters).order_by("id")


def last_event(action, **filters) -> AuditEvent:
    event = events(action, **filters).last()
    assert event is not None, f"no {action} event {filters}"
    return event


def arrange(state: str, people, requester, slug: str, clock) -> ApprovalRequest:
    """A request in `state`, made by `requester` in environment `slug`. The second release
    manager (rhea) gives gos; the on-call (omar) executes."""
    rhea, omar = people["rhea"], people["omar"]
    if state.startswith("emergency"):
        request = request_change(requester, slug, urgency="emergency")
    else:
        request = request_change(requester, slug)
    if state == "incomplete":
        return fresh(request)
    request = complete_checklist(request, requester)
    if state == "stale":
        return request  # the caller decides on the hash of the revision before this one
    if state == "edited_by_decider":
        return request  # the caller (the decider) edits it first
    if state == "one_go_of_two":
        environment_configure(
            actor=people["root"], environment=env(slug), approvals_required=2, reason="two"
        )
        return go(request, rhea)
    if state == "emergency_one_go":
        return go(request, rhea)
    if state in ("pending", "emergency"):
        return request
    if state == "changes_requested":
        return decide(request, rhea, "adjust")
    if state == "rejected":
        return decide(request, rhea, "no_go")
    if state == "cancelled":
        return approval_cancel(actor=requester, request=fresh(request), reason="not needed")
    if state == "expired":
        clock.shift(dt.timedelta(hours=73))
        approval_requests_expire()
        return fresh(request)
    request = go(request, rhea)
    if state == "emergency_approved":
        return go(request, people["ravi"])
    if state == "approved":
        return request
    if state == "executed":
        return approval_execute(actor=omar, request=fresh(request), reason="window open")
    if state == "approved_then_time_passed":
        clock.shift(dt.timedelta(hours=73))
        return fresh(request)
    raise AssertionError(f"unknown state {state}")
