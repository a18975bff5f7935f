"""An auditor in a real Chromium: filters the trail to production denials by agents, exports
CSV, and the file holds exactly those events with their hash fields; the charts draw.

Set E2E_SCREENSHOTS=/some/dir to keep screenshots of the explorer, an event and the charts.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from pathlib import Path

import pytest
from django.core.exceptions import PermissionDenied
from playwright.sync_api import Page, expect

from flags import services
from releasecontrol.audit import canonical_json
from releasecontrol.audit.selectors import AuditFilter, audit_events
from releasecontrol.models import AuditEvent, Environment, User
from tests.e2e.browser import screenshot, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _seed(release_manager: User, oncall: User, developer: User, agent: User) -> None:
    """Real activity through the services: some of it refused by the real policy."""
    envs = {e.slug: e for e in Environment.objects.all()}
    checkout = services.flag_create(actor=release_manager, key="new-checkout", name="Checkout")
    concierge = services.flag_create(actor=developer, key="ai-concierge", name="Concierge")
    services.flag_state_set(
        actor=release_manager,
        flag=checkout,
        environment=envs["production"],
        mode="percentage",
        percentage=10,
        reason="first customers",
    )
    services.flag_state_set(
        actor=agent, flag=concierge, environment=envs["staging"], mode="full", reason="CI rollout"
    )
    attempts = [
        # An agent knocking on production, three ways; a developer once; an agent elsewhere.
        lambda: services.flag_state_set(
            actor=agent, flag=checkout, environment=envs["production"], mode="full", reason="go"
        ),
        lambda: services.flag_state_set(
            actor=agent, flag=concierge, environment=envs["production"], mode="full", reason="go"
        ),
        lambda: services.kill_switch_engage(
            actor=agent, environment=envs["production"], reason="agent panics"
        ),
        lambda: services.flag_state_set(
            actor=developer, flag=checkout, environment=envs["production"], mode="full", reason="x"
        ),
        lambda: services.kill_switch_engage(
            actor=agent, environment=envs["staging"], reason="agent panics in staging"
        ),
    ]
    for attempt in attempts:
        # Refused and recorded: 403, or 409 naming the request to make for who may ask.
        with pytest.raises((PermissionDenied, services.ApprovalRequired)):
            attempt()
    services.kill_switch_engage(
        actor=oncall, environment=envs["staging"], scope="flag", flag=concierge, reason="errors"
    )


def test_auditor__filters_production_agent_denials_and_exports_csv__exactly_those_events(
    page: Page,
    live_server,
    auditor: User,
    release_manager: User,
    oncall: User,
    developer: User,
    agent: User,
    tmp_path: Path,
) -> None:
    # Given a trail with agent refusals in production among other events
    _seed(release_manager, oncall, developer, agent)
    wanted = AuditFilter(environment="production", outcome="denied", actor_kind="agent")
    expected = list(audit_events(wanted).order_by("id").values_list("id", flat=True))
    assert len(expected) == 3
    assert AuditEvent.objects.filter(outcome="denied").count() > len(expected)

    # When the auditor filters the explorer to them
    sign_in(page, live_server.url, auditor)
    page.get_by_test_id("nav-audit").click()
    expect(page.locator("h1")).to_have_text("Audit trail")
    page.evaluate("window.__sameDocument = true")
    page.get_by_test_id("filter-environment").select_option("production")
    page.get_by_test_id("filter-outcome").select_option("denied")
    page.get_by_test_id("filter-actor-kind").select_option("agent")

    # Then the results follow in place, the address carries the filter, and so does Export
    export_csv = page.get_by_test_id("export-csv")
    query = "environment=production&actor_kind=agent&outcome=denied"
    expect(export_csv).to_have_attribute("href", f"/audit/export.csv?{query}")
    expect(page).to_have_url(re.compile(re.escape(f"/audit/?{query}")))
    rows = page.locator("#audit-results [data-event-id]")
    expect(rows).to_have_count(3)
    assert [int(i) for i in rows.evaluate_all("rs => rs.map(r => r.dataset.eventId)")] == list(
        reversed(expected)
    )
    assert page.evaluate("window.__sameDocument") is True  # swapped by htmx, not reloaded
    expect(rows.first.locator(".kind-agent")).to_have_text("agent")
    expect(rows.first.locator(".outcome-denied")).to_have_text("denied")
    expect(rows.first.locator(".env-prod")).to_have_text("production")
    screenshot(page, "audit-explorer")

    # When they export CSV
    with page.expect_download() as download_info:
        export_csv.click()
    download = download_info.value
    path = tmp_path / download.suggested_filename
    download.save_as(path)

    # Then the file holds exactly those events, with the hash fields, re-verifiable offline
    assert re.fullmatch(r"audit-production-agent-denied-\d{8}T\d{6}Z\.csv", path.name)
    with path.open(newline="", encoding="utf-8") as f:
        exported = list(csv.DictReader(f))
    assert [int(r["id"]) for r in exported] == expected
    by_id = {e.pk: e for e in AuditEvent.objects.filter(pk__in=expected)}
    for row in exported:
        event = by_id[int(row["id"])]
        assert (row["prev_hash"], row["hash"]) == (event.prev_hash, event.hash)
        assert (row["actor_kind"], row["environment"], row["outcome"]) == (
            "agent",
            "production",
            "denied",
        )
        # As docs/audit.md reads a CSV row: empty environment, client_ip, before and after
        # cells are null; before and after hold JSON text.
        fields = {k: v for k, v in row.items() if k not in ("id", "prev_hash", "hash")}
        fields["actor_id"] = int(fields["actor_id"])
        for name in ("environment", "client_ip"):
            fields[name] = fields[name] or None
        for name in ("before", "after"):
            fields[name] = json.loads(fields[name]) if fields[name] else None
        recomputed = hashlib.sha256(row["prev_hash"].encode() + canonical_json(fields))
        assert recomputed.hexdigest() == row["hash"]
    # ... and the export itself is on the record, with its filter and format
    export_event = AuditEvent.objects.filter(action="audit.export").latest("id")
    assert (export_event.actor_id, export_event.outcome) == (auditor.pk, "ok")
    assert export_event.after["format"] == "csv"
    assert export_event.after["filter"] == wanted.as_params()

    # One event opens to its detail, linking to the flag
    rows.filter(has_text="new-checkout").locator(".event-link").click()
    expect(page.get_by_test_id("event-chain")).to_contain_text("hash recomputed")
    expect(page.get_by_test_id("target-link")).to_have_attribute("href", "/flags/new-checkout/")
    screenshot(page, "audit-event")

    # The charts draw, with agents' production refusals counted apart
    page.go_back()
    page.get_by_test_id("charts-tab").click()
    for chart in ("actions", "denied", "safety"):
        expect(page.get_by_test_id(f"chart-{chart}")).to_have_attribute("data-ready", "true")
    expect(page.get_by_test_id("chart-totals")).to_contain_text(
        "3 agent attempts refused in production"
    )
    expect(page.get_by_test_id("chart-denied").locator(".legendtext").first).to_be_visible()
    screenshot(page, "audit-charts")
    page.goto("about:blank")  # no request of this page still in flight when the server stops
