"""From an agent's request to what an application sees: the agent asks through the JSON API
with its token for new-checkout at 25% in production and fills the checklist; two release
managers approve it in a real Chromium; the agent edits it (their gos void, struck through);
both approve again; the on-call executes it in the browser. The real OpenFeature SDK with its
OFREP provider, against the same live server with a production SDK key, answers the new value
for a targeting key inside the 25% only from then on. Set E2E_SCREENSHOTS=/some/dir to keep
pictures of the request page."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from openfeature import api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from playwright.sync_api import Page, expect

from approvals.models import Decision
from flags import evaluation
from flags.rules import in_percentage
from flags.services import flag_create, sdk_key_issue
from releasecontrol.models import AuditEvent, Environment, User
from releasecontrol.services import environment_configure, role_grant, user_create
from tests.e2e.browser import screenshot, sign_in
from tests.factories import PASSWORD

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

FLAG = "new-checkout"
TWENTY_FIVE = {"flag": FLAG, "mode": "percentage", "percentage": 25, "allowlist": []}
# Two targeting keys, one bucketed inside the 25% and one outside it (flags.rules).
INSIDE = next(f"customer-{i}" for i in range(1000) if in_percentage(FLAG, f"customer-{i}", 25))
OUTSIDE = next(f"customer-{i}" for i in range(1000) if not in_percentage(FLAG, f"customer-{i}", 25))


@pytest.fixture(autouse=True)
def fresh_evaluation(settings) -> Iterator[None]:
    """Every OFREP answer reads the current flags_version (no snapshot kept across tests)."""
    settings.FLAG_SNAPSHOT_MAX_AGE = 0
    evaluation.store.reset()
    yield
    evaluation.store.reset()


@pytest.fixture
def sessions() -> Iterator[list[requests.Session]]:
    """HTTP sessions to the live server, closed after the test so that no server thread
    (and its database connection) outlives it on a kept-alive connection."""
    opened: list[requests.Session] = []
    yield opened
    api.clear_providers()
    for session in opened:
        session.close()


@pytest.fixture
def second_release_manager(db):
    user = user_create(actor=User.system(), username="rhea", password=PASSWORD)
    role_grant(actor=User.system(), user=user, role="release_manager")
    return user


class AgentApi:
    """The agent's side: the JSON API on the live server, with its personal token."""

    def __init__(self, base: str, token: str, session: requests.Session) -> None:
        self.base, self.session = base, session
        self.session.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, body: dict[str, Any], status: int) -> dict[str, Any]:
        response = self.session.request(method, self.base + path, json=body, timeout=10)
        assert response.status_code == status, response.text
        return response.json()


def checkout_for(client, targeting_key: str):
    # The code default is True: an off answer must come from the server.
    return client.get_boolean_details(FLAG, True, EvaluationContext(targeting_key=targeting_key))


def go_in_browser(page: Page, base: str, user: User, pk: int, expected: str) -> None:
    sign_in(page, base, user)
    page.goto(f"{base}/approvals/{pk}/")
    page.get_by_test_id("decide-go").locator("summary").click()
    confirm = page.get_by_test_id("confirm-text-go")
    expect(confirm).to_contain_text("flag.state.set in Production")
    expect(confirm).to_contain_text("percentage 0 → 25")
    page.get_by_test_id("comment-go").fill("Dashboards and rollback plan checked")
    page.get_by_test_id("confirm-go").click()
    expect(page.get_by_test_id("notice")).to_contain_text(
        f"Your go is recorded: request #{pk} is {expected}."
    )
    expect(page.get_by_test_id("status")).to_have_text(expected.capitalize())


def test_approvals__agent_api_request_two_browser_gos_edit_voids_executed__sdk_sees_25_percent(
    page: Page,
    live_server,
    sessions,
    api_token_for,
    release_manager,
    second_release_manager,
    oncall,
    agent,
) -> None:
    base = live_server.url
    production = Environment.objects.get(slug="production")
    environment_configure(
        actor=User.system(), environment=production, approvals_required=2, reason="two people"
    )
    flag_create(actor=release_manager, key=FLAG, name="New checkout")
    sdk_key = sdk_key_issue(actor=User.system(), environment=production, name="web").raw
    provider = OFREPProvider(base, headers_factory=lambda: {"Authorization": f"Bearer {sdk_key}"})
    sessions.append(provider.session)
    api.set_provider(provider, "web")
    sdk = api.get_client("web")
    off = checkout_for(sdk, INSIDE)
    assert (off.value, off.reason, off.error_code) == (False, "DISABLED", None)
    rita, rhea = release_manager, second_release_manager

    # The agent asks through the API and fills the checklist, item by item.
    sessions.append(requests.Session())
    agent_api = AgentApi(base, api_token_for(agent), sessions[-1])
    made = agent_api.call(
        "POST",
        "/api/v1/approvals",
        {
            "environment": "production",
            "action": "flag.state.set",
            "parameters": TWENTY_FIVE,
            "title": "New checkout to 25% in production",
            "risk": "medium",
            "rollback_plan": "Set new-checkout off in production (one click, < 1 minute)",
        },
        201,
    )
    pk = made["id"]
    assert (made["status"], made["approvals_required"]) == ("pending", 2)
    assert made["checklist"], "production requests carry the deployment checklist"
    for item in made["checklist"]:
        filled = agent_api.call(
            "PATCH",
            f"/api/v1/approvals/{pk}/checklist/{item['id']}",
            {"checked": True, "evidence": "https://ci.example/run/81"},
            200,
        )
    checked = filled["revision"]

    # Two release managers approve it in the browser, each signed in.
    go_in_browser(page, base, rita, pk, "pending")
    go_in_browser(page, base, rhea, pk, "approved")
    assert checkout_for(sdk, INSIDE).value is False, "approved is not executed"

    # The agent edits it through the API: a new revision, both gos void, struck through.
    edited = agent_api.call(
        "PATCH", f"/api/v1/approvals/{pk}", {"impact": "Checkout for EU customers too"}, 200
    )
    assert (edited["status"], edited["revision"], edited["approvals"]) == (
        "pending",
        checked + 1,
        [],
    )
    sign_in(page, base, rita)
    page.goto(f"{base}/approvals/{pk}/")
    expect(page.get_by_test_id("status")).to_have_text("Pending")
    expect(page.get_by_test_id("gos")).to_contain_text("0 of 2")
    void = page.locator('tr.decision[data-void="true"]')
    expect(void).to_have_count(2)
    struck = void.first.locator("del").first
    expect(struck).to_be_visible()
    assert struck.evaluate("el => getComputedStyle(el).textDecorationLine") == "line-through"
    screenshot(page, "openfeature-void")

    go_in_browser(page, base, rita, pk, "pending")
    go_in_browser(page, base, rhea, pk, "approved")
    assert checkout_for(sdk, INSIDE).value is False, "approved again, still not executed"

    # The on-call executes it in the browser, through a confirmation and with a reason.
    sign_in(page, base, oncall)
    page.goto(f"{base}/approvals/{pk}/")
    page.get_by_test_id("execute").locator("summary").click()
    expect(page.get_by_test_id("confirm-text-execute")).to_contain_text("percentage 0 → 25")
    page.get_by_test_id("execute-reason").fill("Window open, error rate flat")
    page.get_by_test_id("confirm-execute").click()
    expect(page.get_by_test_id("status")).to_have_text("Executed")
    expect(page.get_by_test_id("executed")).to_contain_text(oncall.username)
    screenshot(page, "openfeature-executed")

    # The application's OpenFeature client sees it: inside the 25% on, outside still off.
    inside, outside = checkout_for(sdk, INSIDE), checkout_for(sdk, OUTSIDE)
    assert (inside.value, inside.reason, inside.variant) == (True, "SPLIT", "on")
    assert (outside.value, outside.reason, outside.variant) == (False, "SPLIT", "off")

    # The audit trail: the agent's request and checks, four decisions (two voided by the
    # edit), the execution and the change, both linking both approvers.
    events = AuditEvent.objects.filter(target_type="approvalrequest", target_id=str(pk))
    created = events.get(action="approval.request.create")
    assert (created.actor, created.after["parameters"]) == (agent, TWENTY_FIVE)
    assert {e.actor for e in events.filter(action="approval.checklist.set")} == {agent}
    decided = events.filter(action="approval.decide").order_by("id")
    assert [(e.actor.username, e.after["decision"], e.after["revision"]) for e in decided] == [
        ("rita", "go", checked),
        ("rhea", "go", checked),
        ("rita", "go", checked + 1),
        ("rhea", "go", checked + 1),
    ]
    edit = events.get(action="approval.request.update")
    assert (edit.actor, edit.after["changed"]) == (agent, ["impact"])
    assert (edit.before["status"], edit.after["status"]) == ("approved", "pending")
    assert (edit.before["revision"], edit.after["revision"]) == (checked, checked + 1)
    assert list(
        Decision.objects.filter(request_id=pk)
        .order_by("id")
        .values_list("decider__username", "revision", "void")
    ) == [
        ("rita", checked, True),
        ("rhea", checked, True),
        ("rita", checked + 1, False),
        ("rhea", checked + 1, False),
    ]
    executed = events.get(action="approval.execute")
    assert (executed.actor, executed.reason) == (oncall, "Window open, error rate flat")
    assert executed.after["approval"]["approvers"] == ["rita", "rhea"]
    change = AuditEvent.objects.get(action="flag.state.set", environment=production)
    assert (change.actor, change.outcome, change.after["percentage"]) == (oncall, "ok", 25)
    assert change.after["approval"]["request"] == pk
    assert change.after["approval"]["approvers"] == ["rita", "rhea"]
    assert not AuditEvent.objects.filter(outcome="denied").exists()
