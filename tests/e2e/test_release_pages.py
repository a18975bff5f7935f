"""A release's page in a real Chromium: its charts draw (Plotly's strict bundle, data from the
page's JSON block), the page refreshes itself when the monitor writes a new evaluation, and
nothing breaks the Content-Security-Policy on the way.

Set E2E_SCREENSHOTS=/some/dir to keep screenshots of the page before and after the refresh.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.browser import screenshot, sign_in
from tests.e2e.test_csp import COLLECT_VIOLATIONS, CONSOLE_SIGNS, violations
from tests.rollouts.factories import GateEvaluationFactory
from tests.rollouts.pages import live_release

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# The page polls every 5 s; a refresh is due within one poll and its drawing.
REFRESH_TIMEOUT_MS = 15_000


def _charts_drawn(page: Page, names: list[str]) -> None:
    for name in names:
        chart = page.get_by_test_id(f"chart-{name}")
        expect(chart).to_have_attribute("data-ready", "true", timeout=15_000)
        expect(chart.locator("svg.main-svg").first).to_be_visible()


def test_release_page__live__charts_draw_and_the_page_follows_new_evaluations(
    page: Page, live_server, developer
) -> None:
    console: list[str] = []
    page.add_init_script(COLLECT_VIOLATIONS)
    page.on(
        "console",
        lambda m: console.append(m.text) if any(s in m.text for s in CONSOLE_SIGNS) else None,
    )
    page.on("pageerror", lambda error: console.append(f"page error: {error}"))
    release = live_release(baseline=True)
    errors = release.gates.get(name="errors")

    sign_in(page, live_server.url, developer)
    page.goto(f"{live_server.url}/releases/{release.pk}/")

    _charts_drawn(page, ["metric-0", "metric-1", "traffic"])
    errors_chart = page.get_by_test_id("chart-metric-0")
    expect(errors_chart.locator(".legendtext", has_text="errors threshold: > 5")).to_be_visible()
    expect(errors_chart.locator(".annotation-text", has_text="advanced to canary")).to_be_visible()
    gate = page.get_by_test_id("release-live").get_by_test_id("gate-errors")
    expect(gate).to_have_attribute("data-outcome", "success")
    screenshot(page, "release-before")

    # The monitor keeps a failing evaluation: within a poll the header, the table and the
    # charts show it, without a reload.
    evaluation = GateEvaluationFactory(gate=errors, outcome="failure", value=9.5, stage_index=1)

    expect(gate).to_have_attribute("data-outcome", "failure", timeout=REFRESH_TIMEOUT_MS)
    expect(page.get_by_test_id(f"evaluation-{evaluation.pk}")).to_be_visible(
        timeout=REFRESH_TIMEOUT_MS
    )
    _charts_drawn(page, ["metric-0", "metric-1", "traffic"])
    screenshot(page, "release-after")

    page.goto(f"{live_server.url}/releases/")
    expect(page.get_by_test_id(f"release-{release.pk}")).to_be_visible()

    assert violations(page, console) == []
