"""Every kind of page under the Content-Security-Policy in a real Chromium: no violation (no
inline script or handler ran or was refused, nothing evaluated), htmx evaluates nothing, and
the charts still draw with Plotly's strict bundle.

Violations are collected two ways: a `securitypolicyviolation` listener installed before any
page script runs, and the console (Chromium reports each refusal there too)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from flags import services
from releasecontrol.models import AuditEvent, Environment
from tests.e2e.browser import sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

COLLECT_VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__csp.push(e.violatedDirective + " blocked " + (e.blockedURI || "inline")
    + (e.sample ? ": " + e.sample : ""));
});
"""
CONSOLE_SIGNS = ("Content Security Policy", "Content-Security-Policy", "Refused to", "unsafe-eval")


@pytest.fixture
def watched(page: Page):
    """The page, with every CSP violation and htmx eval refusal it meets written down."""
    page.add_init_script(COLLECT_VIOLATIONS)
    console: list[str] = []
    page.on(
        "console",
        lambda m: (
            console.append(m.text)
            if any(sign in m.text for sign in CONSOLE_SIGNS) or "evalDisallowed" in m.text
            else None
        ),
    )
    page.on("pageerror", lambda error: console.append(f"page error: {error}"))
    return page, console


def violations(page: Page, console: list[str]) -> list[str]:
    return page.evaluate("window.__csp || []") + console


def _seed(release_manager, agent):
    envs = {e.slug: e for e in Environment.objects.all()}
    flag = services.flag_create(
        actor=release_manager, key="new-checkout", name="New checkout", tags=["payments"]
    )
    services.flag_state_set(
        actor=release_manager,
        flag=flag,
        environment=envs["staging"],
        mode="percentage",
        percentage=25,
        reason="canary",
    )
    return flag


def _release():
    from tests.rollouts.pages import live_release

    return live_release(environment="production")


def test_every_page_kind__under_the_policy__no_violation_and_charts_draw(
    watched, live_server, release_manager, agent
):
    page, console = watched
    _seed(release_manager, agent)
    release = _release()
    event = AuditEvent.objects.filter(action="flag.state.set").latest("id")
    base = live_server.url

    # The sign-in page, before anyone is signed in; its answer carries the policy.
    response = page.goto(base + "/accounts/login/")
    policy = response.headers["content-security-policy"]
    for directive in (
        "default-src 'self'",
        "script-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ):
        assert directive in policy
    assert "unsafe-eval" not in policy
    assert "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]
    seen = {"sign-in": violations(page, console)}

    sign_in(page, base, release_manager)
    pages = {
        "dashboard": "/",
        "environment": "/environments/production/",
        "board": "/flags/",
        "flag page": "/flags/new-checkout/",
        "audit explorer": "/audit/",
        "event detail": f"/audit/events/{event.pk}/",
        "verify": "/audit/verify/",
        "packs": "/audit/packs/",
        "releases": "/releases/",
        "release page": f"/releases/{release.pk}/",
    }
    for name, path in pages.items():
        console.clear()
        page.goto(base + path)
        page.wait_for_load_state("networkidle")
        assert page.evaluate("htmx.config.allowEval") is False, name
        assert page.evaluate("htmx.config.allowScriptTags") is False, name
        seen[name] = violations(page, console)

    # The board's cell editor (its percentage slider and box), used as a person would.
    console.clear()
    page.goto(base + "/flags/")
    page.get_by_test_id("cell-new-checkout-staging").locator(".cell-face").click()
    editor = page.get_by_test_id("cell-new-checkout-staging").get_by_test_id("editor")
    expect(editor).to_be_visible()
    editor.get_by_test_id("percentage").fill("30")
    editor.get_by_test_id("percentage").dispatch_event("input")
    seen["board editor"] = violations(page, console)

    # The charts draw, with the strict bundle and the data block.
    console.clear()
    page.goto(base + "/audit/charts/")
    for chart in ("chart-actions", "chart-denied", "chart-safety"):
        expect(page.get_by_test_id(chart)).to_have_attribute("data-ready", "true", timeout=15_000)
        expect(page.get_by_test_id(chart).locator("svg.main-svg").first).to_be_visible()
    seen["charts"] = violations(page, console)

    # A release's charts draw the same way, from their own data block.
    console.clear()
    page.goto(base + f"/releases/{release.pk}/")
    for chart in ("chart-metric-0", "chart-traffic"):
        expect(page.get_by_test_id(chart)).to_have_attribute("data-ready", "true", timeout=15_000)
        expect(page.get_by_test_id(chart).locator("svg.main-svg").first).to_be_visible()
    seen["release charts"] = violations(page, console)

    assert {name: found for name, found in seen.items() if found} == {}
