"""Approvals in a real Chromium: an agent's production request (made through the service:
agents cannot sign in to pages) is approved by two release managers, edited by the agent
(their gos void, struck through), approved again, and executed by the on-call, who changes
the flag. Set E2E_SCREENSHOTS=/some/dir to keep pictures of the request page."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from approvals.models import ApprovalRequest, Decision
from approvals.services import approval_request_create, approval_request_update, checklist_item_set
from flags.models import FlagState
from flags.services import flag_create
from releasecontrol.models import AuditEvent, Environment, User
from releasecontrol.services import environment_configure, role_grant, user_create
from tests.approvals.requestables import FLAG_CHANGE, flag_change_registered
from tests.e2e.browser import screenshot, sign_in
from tests.factories import PASSWORD

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

TEN_PERCENT = {"flag": "new-checkout", "mode": "percentage", "percentage": 10, "allowlist": []}


@pytest.fixture
def flag_change(db):
    with flag_change_registered(FLAG_CHANGE, schedulable=True):
        yield FLAG_CHANGE


@pytest.fixture
def second_release_manager(db):
    user = user_create(actor=User.system(), username="rhea", password=PASSWORD)
    role_grant(actor=User.system(), user=user, role="release_manager")
    return user


def _go(page: Page, base: str, user: User, request: ApprovalRequest, expected: str) -> None:
    sign_in(page, base, user)
    page.goto(f"{base}/approvals/{request.pk}/")
    page.get_by_test_id("decide-go").locator("summary").click()
    confirm = page.get_by_test_id("confirm-text-go")
    expect(confirm).to_contain_text("test.flag.change in Production")
    expect(confirm).to_contain_text("new-checkout: mode off → percentage, percentage 0 → 10")
    page.get_by_test_id("comment-go").fill("Checked the dashboards")
    page.get_by_test_id("confirm-go").click()
    expect(page.get_by_test_id("notice")).to_contain_text(
        f"Your go is recorded: request #{request.pk} is {expected}."
    )
    expect(page.get_by_test_id("status")).to_have_text(expected.capitalize())


def test_approvals__agent_request_two_gos_edit_voids_again_executed(
    page: Page, live_server, flag_change, release_manager, second_release_manager, oncall, agent
) -> None:
    base = live_server.url
    production = Environment.objects.get(slug="production")
    environment_configure(
        actor=User.system(), environment=production, approvals_required=2, reason="two people"
    )
    flag_create(actor=release_manager, key="new-checkout", name="New checkout")
    request = approval_request_create(
        actor=agent,
        environment=production,
        action=FLAG_CHANGE,
        parameters=TEN_PERCENT,
        title="10% of checkout",
        risk="medium",
        rollback_plan="Set new-checkout off in production (one click, < 1 minute)",
    )
    for item in request.checklist.all():
        checklist_item_set(
            actor=agent, item=item, checked=True, evidence="https://ci.example/run/81"
        )
    rita, rhea = release_manager, second_release_manager
    checked = ApprovalRequest.objects.get(pk=request.pk).revision

    # The release manager finds it in the inbox (and the badge), production in red.
    sign_in(page, base, rita)
    expect(page.get_by_test_id("approvals-badge")).to_have_text("1")
    page.get_by_test_id("nav-approvals").click()
    expect(page.get_by_test_id("count-awaiting")).to_have_text("1")
    page.get_by_test_id(f"request-link-{request.pk}").click()
    expect(page.get_by_test_id("production-banner")).to_be_visible()
    expect(page.get_by_test_id("checkpoint")).to_contain_text(
        "CHECKPOINT: Approve deployment plan?"
    )
    expect(page.get_by_test_id("execute-blocked")).to_contain_text("only an approved request")
    page.evaluate("window.__sameDocument = true")
    page.get_by_test_id("decide-go").locator("summary").click()
    expect(page.get_by_test_id("confirm-text-go")).to_contain_text("Go 1 of 2")
    screenshot(page, "approval-confirm-go")
    page.get_by_test_id("confirm-go").click()
    expect(page.get_by_test_id("notice")).to_contain_text("is pending")
    expect(page.get_by_test_id("toast")).to_contain_text("Your go is recorded")
    assert page.evaluate("window.__sameDocument") is True, "the page reloaded"

    _go(page, base, rhea, request, "approved")

    # The agent edits the request through the service: both gos are void, struck through.
    approval_request_update(
        actor=agent,
        request=ApprovalRequest.objects.get(pk=request.pk),
        impact="Checkout for EU customers too",
    )
    sign_in(page, base, rita)
    page.goto(f"{base}/approvals/{request.pk}/")
    expect(page.get_by_test_id("status")).to_have_text("Pending")
    void = page.locator('tr.decision[data-void="true"]')
    expect(void).to_have_count(2)
    expect(void.first.locator("del").first).to_be_visible()
    assert (
        void.first.locator("del").first.evaluate("el => getComputedStyle(el).textDecorationLine")
        == "line-through"
    )
    screenshot(page, "approval-void")

    _go(page, base, rita, request, "pending")
    _go(page, base, rhea, request, "approved")

    # The on-call executes it, through a confirmation naming the change and with a reason.
    sign_in(page, base, oncall)
    page.goto(f"{base}/approvals/{request.pk}/")
    page.get_by_test_id("execute").locator("summary").click()
    expect(page.get_by_test_id("confirm-text-execute")).to_contain_text(
        "test.flag.change in Production now, changing new-checkout: mode off → percentage"
    )
    page.get_by_test_id("execute-reason").fill("Window open, error rate flat")
    page.get_by_test_id("confirm-execute").click()
    expect(page.get_by_test_id("status")).to_have_text("Executed")
    expect(page.get_by_test_id("executed")).to_contain_text(oncall.username)
    screenshot(page, "approval-executed")

    state = FlagState.objects.get(flag__key="new-checkout", environment=production)
    assert (state.mode, state.percentage, state.updated_by) == ("percentage", 10, oncall)
    decisions = list(Decision.objects.filter(request_id=request.pk).order_by("id"))
    assert [(d.decider.username, d.revision, d.void) for d in decisions] == [
        ("rita", checked, True),
        ("rhea", checked, True),
        ("rita", checked + 1, False),
        ("rhea", checked + 1, False),
    ]
    events = AuditEvent.objects.filter(
        target_type="approvalrequest", target_id=str(request.pk)
    ).order_by("id")
    assert [e.actor.username for e in events.filter(action="approval.decide")] == [
        "rita",
        "rhea",
        "rita",
        "rhea",
    ]
    edit = events.get(action="approval.request.update")
    assert (edit.actor, edit.after["changed"]) == (agent, ["impact"])
    executed = events.get(action="approval.execute")
    assert (executed.actor, executed.reason) == (oncall, "Window open, error rate flat")
    assert executed.after["approval"]["approvers"] == ["rita", "rhea"]
    # The change itself is recorded as the requested action, linking the request it executed.
    change = AuditEvent.objects.filter(action=flag_change, environment=production).latest("id")
    assert (change.actor, change.outcome, change.after["mode"]) == (oncall, "ok", "percentage")
    assert change.after["approval"]["request"] == request.pk
    assert not AuditEvent.objects.filter(outcome="denied").exists()
