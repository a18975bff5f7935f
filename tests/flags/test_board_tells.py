"""The pages tell before, not after: read-only cells for those who may not change them, the
kill switch that covers a cell named before editing, a non-boolean flag's values and their
acceptance in production (only ever requested), restores by event id whatever its age,
allowlist keys with commas, no inline handlers, and the dashboard's engaged switches and
live flags."""

from __future__ import annotations

import json
import re
from html import unescape as html_unescape
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from flags import services
from flags.models import FlagState, Tag
from flags.presenters import column_of
from flags.selectors import kill_switch_cover
from releasecontrol.models import AuditEvent
from tests.flags.approved import accept_through_approval
from tests.flags.test_board import HTMX, cell_html, make_flags

pytestmark = pytest.mark.django_db

TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "flags"
GOOD = {"payment_provider": "https://pay.example"}
EVIL = {"payment_provider": "https://evil.example"}


@pytest.fixture
def concierge(release_manager, staging, production):
    flag = services.flag_create(
        actor=release_manager, key="ai-concierge", name="AI concierge", tags=["concierge"]
    )
    services.flag_state_set(
        actor=release_manager,
        flag=flag,
        environment=staging,
        mode="percentage",
        percentage=25,
        allowlist=["pilot-1"],
    )
    return flag


@pytest.fixture
def payments(developer):
    return services.flag_create(
        actor=developer,
        key="payments",
        name="Payments",
        type="object",
        on_value=GOOD,
        off_value=EVIL,
    )


def edit_url(key: str, environment: str) -> str:
    return f"/flags/{key}/environments/{environment}/edit"


def accept_url(key: str, environment: str = "production") -> str:
    return f"/flags/{key}/environments/{environment}/accept"


# --- Read-only before any edit ---------------------------------------------------------------


def test_board__developer__production_cells_read_only_staging_editable(
    client, developer, concierge
):
    client.force_login(developer)
    response = client.get("/flags/")
    production = cell_html(response.content, "ai-concierge", "production")
    staging = cell_html(response.content, "ai-concierge", "staging")
    assert "click to change" not in production
    assert 'data-testid="read-only"' in production and "read-only" in production
    assert "no role that may change" in production  # the policy's own reason, as a title
    assert 'data-testid="request-approval"' in production  # the way on: ask for a go
    assert edit_url("ai-concierge", "staging") in staging
    assert 'data-testid="read-only"' not in staging
    assert 'data-testid="request-approval"' not in staging


def test_board__auditor__production_cells_read_only_without_a_request(client, auditor, concierge):
    client.force_login(auditor)
    production = cell_html(client.get("/flags/").content, "ai-concierge", "production")
    assert 'data-testid="read-only"' in production
    assert 'data-testid="request-approval"' not in production
    assert edit_url("ai-concierge", "production") not in production


def test_column__agent__production_read_only_with_the_policys_reason(agent, production, staging):
    cover = kill_switch_cover()
    column = column_of(agent, production, cover)
    assert (column.can_change, column.can_operate) == (False, False)
    assert "agent accounts may prepare and request production changes" in column.read_only_why
    assert column_of(agent, staging, cover).can_change is True


@pytest.mark.django_db(transaction=True)
def test_state_set__developer_posts_to_production_anyway__refused_at_once_and_audited(
    client, developer, concierge
):
    """No confirmation step to walk through first: the server refuses and records it."""

    client.force_login(developer)
    response = client.post(
        "/flags/ai-concierge/environments/production/",
        {"mode": "full", "version": "1", "reason": "please"},
        **HTMX,
    )
    assert response.status_code == 409  # refused, and told the request to make instead
    assert 'data-testid="confirm"' not in response.content.decode()
    assert 'data-testid="notice-link"' in response.content.decode()
    denied = AuditEvent.objects.filter(outcome="denied").latest("id")
    assert (denied.actor, denied.action, denied.environment_id) == (
        developer,
        "flag.state.set",
        "production",
    )


# --- Kill switches said before editing -------------------------------------------------------


def test_state_edit__covered_by_a_kill_switch__names_it_who_and_why_before_editing(
    client, oncall, release_manager, concierge, staging
):
    services.kill_switch_engage(
        actor=oncall,
        environment=staging,
        scope="tag",
        tag=Tag.objects.get(name="concierge"),
        reason="model answers are off",
    )
    client.force_login(release_manager)
    html = client.get(edit_url("ai-concierge", "staging"), **HTMX).content.decode()
    notice = html[html.index('data-testid="notice"') :]
    assert "Kill switch engaged: the concierge tag in Staging" in notice
    assert "by omar" in notice and "model answers are off" in notice
    assert "Only changes that reduce exposure are allowed" in notice
    assert 'data-testid="editor"' in html  # reducing is still possible


def test_board__tag_removed_after_a_tag_switch__cell_still_marked_killed(
    client, oncall, release_manager, concierge, staging
):
    services.kill_switch_engage(
        actor=oncall,
        environment=staging,
        scope="tag",
        tag=Tag.objects.get(name="concierge"),
        reason="model answers are off",
    )
    services.flag_update(actor=release_manager, flag=concierge, tags=[], reason="retag")
    client.force_login(release_manager)
    cell = cell_html(client.get("/flags/").content, "ai-concierge", "staging")
    assert 'data-testid="ks-marker"' in cell and "the concierge tag" in cell


# --- A non-boolean flag's values and their acceptance ----------------------------------------


def test_board__unaccepted_values__shown_and_explained_to_those_who_may_not_accept(
    client, developer, payments
):
    client.force_login(developer)
    response = client.get("/flags/")
    html = response.content.decode()
    assert "https://evil.example" in html[html.index('data-testid="values-payments"') :][:400]
    production = cell_html(response.content, "payments", "production")
    assert "values not accepted: production serves the callers' default" in production
    assert 'data-testid="accept-values"' not in production
    assert 'data-testid="values-pending"' not in cell_html(response.content, "payments", "staging")


@pytest.mark.parametrize("who", ["release_manager", "oncall", "admin_user", "developer"])
def test_board__unaccepted_values__everyone_who_may_ask_offered_request_acceptance_prefilled(
    request, client, payments, who
):
    """Values are accepted only through an approved request, production rights or not."""
    client.force_login(request.getfixturevalue(who))
    cell = cell_html(client.get("/flags/").content, "payments", "production")
    assert "Request acceptance…" in cell and "Accept values" not in cell
    assert accept_url("payments") not in cell
    link = re.search(r'href="([^"]*)" data-testid="request-accept"', cell).group(1)
    query = parse_qs(urlsplit(html_unescape(link)).query)
    assert (query["action"], query["environment"]) == (["flag.accept"], ["production"])
    assert json.loads(query["parameters"][0]) == {"flag": "payments"}

    page = client.get(html_unescape(link))
    assert page.status_code == 200
    text = page.content.decode()
    assert "flag.accept" in text and "https://evil.example" in text  # the preview, prefilled


def test_board__unaccepted_values__auditor_told_without_a_request(client, auditor, payments):
    client.force_login(auditor)
    cell = cell_html(client.get("/flags/").content, "payments", "production")
    assert "values not accepted: production serves the callers' default" in cell
    assert 'data-testid="request-accept"' not in cell


def test_board__values_accepted_through_a_request__nothing_pending_nothing_offered(
    client, developer, release_manager, payments, production
):
    accept_through_approval(
        payments,
        production,
        requester=developer,
        approver=release_manager,
        executor=release_manager,
    )
    client.force_login(release_manager)
    cell = cell_html(client.get("/flags/").content, "payments", "production")
    assert 'data-testid="values-pending"' not in cell
    assert 'data-testid="request-accept"' not in cell


def test_accept_page__gone__404_nothing_recorded(client, release_manager, payments):
    """The board accepts nothing itself: there is no page that would."""
    client.force_login(release_manager)
    response = client.post(accept_url("payments"), {"version": "1", "reason": "mine"}, **HTMX)
    assert response.status_code == 404
    assert not AuditEvent.objects.filter(action="flag.accept").exists()


# --- Restore by event id, allowlists with commas --------------------------------------------


def test_state_restore__event_older_than_the_history_page__restored_by_id(
    client, developer, concierge, staging
):
    target = AuditEvent.objects.filter(action="flag.state.set").latest("id")  # 25% + pilot-1
    for percentage in range(1, 206):  # more than the 200 events the history tab lists
        services.flag_state_set(
            actor=developer, flag=concierge, environment=staging, percentage=percentage % 100
        )
    version = FlagState.objects.get(flag=concierge, environment=staging).version
    client.force_login(developer)
    response = client.post(
        "/flags/ai-concierge/environments/staging/restore",
        {"event": target.pk, "version": version, "reason": "back to 25%"},
        **HTMX,
    )
    assert response.status_code == 200, response.content.decode()
    state = FlagState.objects.get(flag=concierge, environment=staging)
    assert (state.mode, state.percentage, state.allowlist) == ("percentage", 25, ["pilot-1"])


def test_state_set__allowlist_key_with_a_comma__survives_a_percentage_edit(
    client, developer, concierge, staging
):
    services.flag_state_set(
        actor=developer, flag=concierge, environment=staging, allowlist=["tenant,42", "pilot-1"]
    )
    client.force_login(developer)
    editor = client.get(edit_url("ai-concierge", "staging"), **HTMX).content.decode()
    textarea = re.search(r'data-testid="allowlist">([^<]*)<', editor).group(1)
    version = FlagState.objects.get(flag=concierge, environment=staging).version
    response = client.post(
        "/flags/ai-concierge/environments/staging/",
        {"mode": "percentage", "percentage": "30", "allowlist": textarea, "version": version},
        **HTMX,
    )
    assert response.status_code == 200
    state = FlagState.objects.get(flag=concierge, environment=staging)
    assert (state.percentage, state.allowlist) == (30, ["pilot-1", "tenant,42"])


# --- No inline script or handler -------------------------------------------------------------


def test_flag_templates__no_inline_script_or_handler():
    inline = re.compile(r"<script(?![^>]*\bsrc=)|\son[a-z]+\s*=", re.IGNORECASE)
    for template in TEMPLATES.glob("*.html"):
        if template.name == "_toast.html":
            continue  # rewritten with the Content-Security-Policy
        found = inline.findall(template.read_text())
        assert not found, f"{template.name}: {found}"


def test_board_page__loads_the_board_script(client, developer, concierge):
    client.force_login(developer)
    assert b'<script src="/static/js/board.js" defer></script>' in client.get("/flags/").content


# --- The dashboard --------------------------------------------------------------------------


def card(html: bytes, slug: str) -> str:
    text = html.decode()
    start = text.index(f'data-testid="env-{slug}"')
    return text[start : text.index("</article>", start)]


def test_dashboard__flag_switch_engaged_in_production__card_says_engaged_not_released(
    client, oncall, concierge, production
):
    services.flag_state_set(
        actor=oncall, flag=concierge, environment=production, mode="full", reason="go"
    )
    services.kill_switch_engage(
        actor=oncall, environment=production, scope="flag", flag=concierge, reason="bad answers"
    )
    client.force_login(oncall)
    production_card = card(client.get("/").content, "production")
    assert "ENGAGED" in production_card and "ai-concierge" in production_card
    assert "bad answers" in production_card and "released" not in production_card


def test_dashboard__live_flags__counted_per_mode_in_each_environment(
    client, developer, release_manager, concierge, staging
):
    services.flag_create(actor=release_manager, key="dark", name="Dark")
    services.flag_state_set(
        actor=developer,
        flag=services.flag_create(actor=developer, key="s", name="S"),
        environment=staging,
        mode="shadow",
    )
    client.force_login(developer)
    live = card(client.get("/").content, "staging")
    live = live[live.index('data-testid="dash-live-staging"') :]
    assert "full 0" in live and "percentage 1" in live and "shadow 1" in live
    assert "allowlist 0" in live


def test_dashboard__many_flags_and_switches__same_number_of_queries(
    client, developer, oncall, production, django_assert_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    make_flags(5)
    client.force_login(developer)
    client.get("/")
    with CaptureQueriesContext(connection) as few:
        client.get("/")
    make_flags(100, start=5)
    services.kill_switch_engage(
        actor=oncall,
        environment=production,
        scope="tag",
        tag=Tag.objects.get(name="ocr"),
        reason="ocr down",
    )
    services.kill_switch_engage(
        actor=oncall, environment=production, scope="environment", reason="all down"
    )
    with django_assert_num_queries(len(few)):
        html = client.get("/").content
    assert card(html, "production").count("ENGAGED") == 2


def test_flag_history__acceptance__listed_with_the_exact_values(
    client, developer, release_manager, payments, production
):
    accept_through_approval(
        payments,
        production,
        requester=developer,
        approver=release_manager,
        executor=release_manager,
    )
    client.force_login(release_manager)
    html = client.get("/flags/payments/?tab=history").content.decode()
    row = html[html.index("Accepted the values") :][:600]
    assert "https://pay.example" in row and "https://evil.example" in row
