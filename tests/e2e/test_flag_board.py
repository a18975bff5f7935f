"""The flag board in a real Chromium: a developer flips staging in place (and the board follows
others' changes without disturbing an open editor), a release manager takes production to 10%
through the confirmation, and the developer finds production read-only before typing anything
and asks for approval of a change there instead.

Set E2E_SCREENSHOTS=/some/dir to keep screenshots of the board and the confirmation.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from approvals.models import ApprovalRequest
from flags import services
from flags.models import Flag, FlagState
from releasecontrol.models import AuditEvent, Environment, User
from tests.e2e.browser import screenshot, sign_in
from tests.factories import PASSWORD

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _seed(actor: User) -> None:
    envs = {e.slug: e for e in Environment.objects.all()}
    demo = [
        ("ai-concierge", "AI concierge", ["concierge"], {"staging": ("percentage", 50, ["t-1"])}),
        ("calling", "Outbound calling", ["calling"], {"development": ("shadow", 0, [])}),
        ("new-checkout", "New checkout", ["payments"], {"development": ("full", 0, [])}),
        ("ocr", "OCR of uploaded images", ["ocr"], {"staging": ("allowlist", 0, ["a", "b"])}),
    ]
    for key, name, tags, states in demo:
        flag = services.flag_create(actor=actor, key=key, name=name, tags=tags)
        for slug, (mode, percentage, allowlist) in states.items():
            services.flag_state_set(
                actor=actor,
                flag=flag,
                environment=envs[slug],
                mode=mode,
                percentage=percentage,
                allowlist=allowlist,
                reason="e2e seed",
            )


def _open_editor(page: Page, key: str, environment: str) -> None:
    cell = page.get_by_test_id(f"cell-{key}-{environment}")
    cell.locator(".cell-face").click()
    expect(cell.get_by_test_id("editor")).to_be_visible()


def test_flag_board__developer_release_manager__flip_confirm_read_only(
    page: Page, live_server, developer, release_manager, agent
) -> None:
    _seed(release_manager)
    staging = Environment.objects.get(slug="staging")
    production = Environment.objects.get(slug="production")

    # A developer flips a staging flag on the board; the cell changes without a reload.
    sign_in(page, live_server.url, developer)
    page.goto(live_server.url + "/flags/")
    expect(page.get_by_test_id("row-new-checkout")).to_be_visible()
    page.evaluate("window.__sameDocument = true")
    _open_editor(page, "new-checkout", "staging")
    cell = page.get_by_test_id("cell-new-checkout-staging")
    cell.get_by_test_id("mode").select_option("full")
    cell.get_by_test_id("save").click()
    expect(cell).to_have_attribute("data-mode", "full")
    expect(cell.get_by_test_id("editor")).to_have_count(0)
    expect(page.get_by_test_id("toast")).to_contain_text("new-checkout in Staging: full")
    assert page.evaluate("window.__sameDocument") is True, "the page reloaded"
    flag_state = FlagState.objects.get(flag__key="new-checkout", environment=staging)
    assert (flag_state.mode, flag_state.updated_by) == ("full", developer)
    screenshot(page, "board")

    # Someone else changes a flag: the board follows by itself, but never under an open editor.
    _open_editor(page, "ocr", "staging")
    editing = page.get_by_test_id("cell-ocr-staging")
    editing.get_by_test_id("allowlist").fill("a\nb\nc")
    services.flag_state_set(
        actor=release_manager,
        flag=Flag.objects.get(key="calling"),
        environment=staging,
        mode="full",
    )
    page.wait_for_timeout(6_500)  # longer than a poll interval
    expect(editing.get_by_test_id("allowlist")).to_have_value("a\nb\nc")
    expect(page.get_by_test_id("cell-calling-staging")).to_have_attribute("data-mode", "off")
    editing.get_by_role("button", name="Cancel").click()
    expect(page.get_by_test_id("cell-calling-staging")).to_have_attribute(
        "data-mode", "full", timeout=8_000
    )
    assert page.evaluate("window.__sameDocument") is True

    # A release manager sets production to 10% with a reason, through the confirmation.
    sign_in(page, live_server.url, release_manager)
    page.goto(live_server.url + "/flags/")
    _open_editor(page, "ai-concierge", "production")
    cell = page.get_by_test_id("cell-ai-concierge-production")
    cell.get_by_test_id("mode").select_option("percentage")
    cell.get_by_test_id("percentage").fill("10")
    # static/js/board.js keeps the slider with the number (no inline handler).
    expect(cell.get_by_test_id("percentage-slider")).to_have_value("10")
    cell.get_by_test_id("save").click()
    summary = cell.get_by_test_id("confirm-summary")
    expect(summary).to_have_text(
        "ai-concierge in production: mode off → percentage, percentage 0% → 10%"
    )
    cell.get_by_test_id("reason").fill("Stage 1 of the concierge rollout; error rate flat")
    screenshot(page, "production-confirmation")
    cell.get_by_role("button", name="Apply to production").click()
    expect(cell).to_have_attribute("data-mode", "percentage")
    expect(cell.locator(".pct-num")).to_have_text("10%")
    flag_state = FlagState.objects.get(flag__key="ai-concierge", environment=production)
    assert (flag_state.mode, flag_state.percentage) == ("percentage", 10)
    event = AuditEvent.objects.filter(action="flag.state.set", environment=production).latest("id")
    assert (event.actor, event.outcome) == (release_manager, "ok")
    assert event.reason == "Stage 1 of the concierge rollout; error rate flat"

    # A developer sees production read-only before typing anything; the cell offers to ask
    # for approval instead: the change chosen there goes on to the request's page.
    sign_in(page, live_server.url, developer)
    page.goto(live_server.url + "/flags/")
    cell = page.get_by_test_id("cell-ai-concierge-production")
    expect(cell.get_by_test_id("read-only")).to_contain_text("read-only")
    cell.get_by_test_id("request-approval").click()
    expect(cell.get_by_test_id("request-form")).to_be_visible()
    expect(cell.get_by_test_id("save")).to_have_count(0)
    screenshot(page, "developer-read-only")
    cell.get_by_test_id("percentage").fill("25")
    cell.get_by_test_id("request-submit").click()
    expect(page.get_by_test_id("preview")).to_contain_text("percentage")
    expect(page.get_by_test_id("production-banner")).to_be_visible()
    expect(page.get_by_test_id("preview-percentage")).to_contain_text("25")
    page.fill("#id_title", "25% of the concierge")
    page.fill("#id_rollback_plan", "Set it back to 10%")
    page.get_by_test_id("request-submit").click()
    page.wait_for_load_state()
    screenshot(page, "developer-requested")
    asked = ApprovalRequest.objects.get(requested_by=developer)
    assert (asked.action, asked.parameters["percentage"], asked.status) == (
        "flag.state.set",
        25,
        "pending",
    )
    flag_state.refresh_from_db()
    assert (flag_state.mode, flag_state.percentage) == ("percentage", 10)
    assert not AuditEvent.objects.filter(actor=developer, outcome="denied").exists()

    # An agent account tries to sign in to the board: tokens only, refused and audited.
    page.context.clear_cookies()
    page.goto(live_server.url + "/accounts/login/?next=/flags/")
    page.fill("#id_username", agent.username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    expect(page.get_by_test_id("sign-in-error")).to_contain_text(
        "Agent accounts cannot sign in to pages"
    )
    screenshot(page, "agent-refused")
    flag_state.refresh_from_db()
    assert (flag_state.mode, flag_state.percentage) == ("percentage", 10)
    denied = AuditEvent.objects.get(actor=agent, outcome="denied")
    assert (denied.action, denied.target_name) == ("user.sign_in", agent.username)
