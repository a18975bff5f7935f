"""Asking for approval from the board: the cells that offer "Request approval", the request
editor that carries the change on, and the page that makes the request (allowed, 403, 405,
bad input)."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import NoReverseMatch, reverse

from approvals.models import ApprovalRequest
from flags import services
from releasecontrol.models import AuditEvent, Environment

from .test_board import HTMX, cell_html

NEW = "/approvals/new/"


def request_page(action: str, environment: str, parameters: dict) -> str:
    return f"{NEW}?action={action}&environment={environment}&parameters=" + json.dumps(
        parameters
    ).replace(" ", "")


TEN = {"flag": "new-checkout", "mode": "percentage", "percentage": 10, "allowlist": []}


@pytest.fixture
def checkout(release_manager, production):
    return services.flag_create(actor=release_manager, key="new-checkout", name="New checkout")


@pytest.fixture
def copy_flag(developer, production):
    return services.flag_create(
        actor=developer, key="copy", name="Copy", type="string", on_value="Pay", off_value="Buy"
    )


# --- The board offers it ----------------------------------------------------------------------


def test_board__requires_approval_for_increase__release_manager_offered_request_approval(
    client, release_manager, checkout, production
):
    Environment.objects.filter(pk=production.pk).update(require_approval_for_increase=True)
    client.force_login(release_manager)

    cell = cell_html(client.get("/flags/").content, "new-checkout", "production")
    assert "click to change" in cell  # still editable: reductions go straight through
    assert 'data-testid="request-approval"' in cell and "?purpose=request" in cell

    editor = client.get(
        "/flags/new-checkout/environments/production/edit?purpose=request", **HTMX
    ).content.decode()
    assert 'data-testid="request-form"' in editor
    assert "requires an approved request for every change that increases exposure" in editor


def test_board__release_manager_in_production__no_request_offered(
    client, release_manager, checkout
):
    client.force_login(release_manager)
    cell = cell_html(client.get("/flags/").content, "new-checkout", "production")
    assert 'data-testid="request-approval"' not in cell


def test_board__values_pending__developer_offered_request_acceptance(client, developer, copy_flag):
    client.force_login(developer)
    cell = cell_html(client.get("/flags/").content, "copy", "production")
    assert 'data-testid="request-accept"' in cell
    assert 'data-testid="accept-values"' not in cell
    href = cell.split('data-testid="request-accept"')[0].rsplit('href="', 1)[1].split('"')[0]
    query = parse_qs(urlsplit(href.replace("&amp;", "&")).query)
    assert query["action"] == ["flag.accept"] and query["environment"] == ["production"]
    assert json.loads(query["parameters"][0]) == {"flag": "copy"}


def test_state_request__the_change_chosen__redirects_to_the_request_page_prefilled(
    client, developer, checkout
):
    client.force_login(developer)
    response = client.get(
        "/flags/new-checkout/environments/production/request",
        {"mode": "percentage", "percentage": "10", "allowlist": "vip-2\nvip-1"},
    )

    assert response.status_code == 302
    target = urlsplit(response["Location"])
    assert target.path == NEW
    query = parse_qs(target.query)
    assert (query["action"], query["environment"]) == (["flag.state.set"], ["production"])
    assert json.loads(query["parameters"][0]) == {**TEN, "allowlist": ["vip-1", "vip-2"]}


def test_state_request__bad_input__400_with_the_values_kept(client, developer, checkout):
    client.force_login(developer)
    response = client.get(
        "/flags/new-checkout/environments/production/request",
        {"mode": "percentage", "percentage": "101"},
        **HTMX,
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert 'data-testid="request-form"' in html and "101" in html


def test_state_request__post__405(client, developer, checkout):
    client.force_login(developer)
    assert client.post("/flags/new-checkout/environments/production/request").status_code == 405


# --- The page that makes the request ---------------------------------------------------------


def test_request_new__developer__preview_prefilled_title_production_banner(
    client, developer, checkout
):
    client.force_login(developer)
    response = client.get(request_page("flag.state.set", "production", TEN))

    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-testid="production-banner"' in html
    assert 'data-testid="preview"' in html
    mode_row = html.split('data-testid="preview-mode"')[1].split("</tr>")[0]
    assert "&quot;off&quot;" in mode_row and "&quot;percentage&quot;" in mode_row
    version_row = html.split('data-testid="preview-version"')[1].split("</tr>")[0]
    assert "<code>1</code>" in version_row and "<code>2</code>" in version_row
    assert 'value="new-checkout in production: mode &quot;percentage&quot;' in html
    for field in ("title", "urgency", "risk", "impact", "mitigation", "rollback_plan"):
        assert f'name="{field}"' in html
    assert 'name="window_start"' in html and 'name="alternative_window_end"' in html


def test_request_new__post__creates_the_request_for_exactly_that_change(
    client, developer, checkout
):
    client.force_login(developer)
    response = client.post(
        NEW,
        {
            "action": "flag.state.set",
            "environment": "production",
            "parameters": json.dumps(TEN),
            "title": "10% of checkout",
            "urgency": "routine",
            "risk": "medium",
            "impact": "10% of buyers see the new checkout",
            "mitigation": "error-rate gate",
            "rollback_plan": "set it off",
            "window_start": "2026-12-02T09:00",
            "window_end": "2026-12-02T11:00",
        },
    )

    created = ApprovalRequest.objects.get()
    assert (created.requested_by, created.action, created.parameters) == (
        developer,
        "flag.state.set",
        TEN,
    )
    assert (created.status, created.title, created.rollback_plan) == (
        "pending",
        "10% of checkout",
        "set it off",
    )
    assert created.preview["items"][0]["after"]["percentage"] == 10
    assert created.window_start.isoformat() == "2026-12-02T09:00:00+00:00"
    try:
        detail = reverse("approvals:detail", args=[created.pk])
    except NoReverseMatch:
        assert response.status_code == 200
        assert f"Request #{created.pk} is pending" in response.content.decode()
    else:
        assert (response.status_code, response["Location"]) == (303, detail)


def test_request_new__post_without_title__400_nothing_created(client, developer, checkout):
    client.force_login(developer)
    response = client.post(
        NEW,
        {
            "action": "flag.state.set",
            "environment": "production",
            "parameters": json.dumps(TEN),
            "title": "",
            "urgency": "routine",
            "risk": "medium",
        },
    )
    assert response.status_code == 400
    assert 'name="title"' in response.content.decode()
    assert not ApprovalRequest.objects.exists()


def test_request_new__accept__preview_names_the_exact_values(client, developer, copy_flag):
    client.force_login(developer)
    response = client.get(request_page("flag.accept", "production", {"flag": "copy"}))
    assert response.status_code == 200
    row = response.content.decode().split('data-testid="preview-accepted"')[1].split("</tr>")[0]
    assert "null" in row and "&quot;on_value&quot;: &quot;Pay&quot;" in row


def test_request_new__auditor__403(client, auditor, checkout):
    client.force_login(auditor)
    response = client.get(request_page("flag.state.set", "production", TEN))
    assert response.status_code == 403


@pytest.mark.django_db(transaction=True)
def test_request_new__auditor_posts_anyway__403_and_denial_audited(client, auditor, checkout):
    client.force_login(auditor)
    response = client.post(
        NEW,
        {
            "action": "flag.state.set",
            "environment": "production",
            "parameters": json.dumps(TEN),
            "title": "mine",
            "urgency": "routine",
            "risk": "low",
        },
    )
    assert response.status_code == 403
    denied = AuditEvent.objects.filter(outcome="denied").latest("id")
    assert (denied.actor, denied.action) == (auditor, "approval.request.create")
    assert not ApprovalRequest.objects.exists()


def test_request_new__put__405(client, developer):
    client.force_login(developer)
    assert client.put(NEW).status_code == 405


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("?action=rocket.launch&environment=production&parameters={}", "cannot be requested"),
        ("?action=flag.state.set&environment=moon&parameters={}", "no environment"),
        ("?action=flag.state.set&environment=production&parameters={nope", "not valid JSON"),
        (
            '?action=flag.state.set&environment=production&parameters={"flag":"nope","mode":"full"}',
            "no flag",
        ),
        (
            '?action=flag.accept&environment=production&parameters={"flag":"new-checkout"}',
            "Nothing to accept",
        ),
    ],
)
def test_request_new__bad_input__400_says_what(client, developer, checkout, query, says):
    client.force_login(developer)
    response = client.get(NEW + query)
    assert response.status_code == 400
    assert says in response.content.decode().replace("&#x27;", "'")


def test_state_request__auditor__403(client, auditor, checkout):
    client.force_login(auditor)
    response = client.get(
        "/flags/new-checkout/environments/production/request", {"mode": "full"}, **HTMX
    )
    assert response.status_code == 403
