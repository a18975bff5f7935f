"""The flag board: the grid, its filters and pages, its polling, and a constant query count."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from flags import services
from flags.models import Flag, FlagState, Tag
from flags.rules import MODES
from releasecontrol.models import Environment

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def make_flags(count: int, *, start: int = 0) -> list[Flag]:
    """Many flags at once, with varied states and tags in every environment (read-side data:
    the services make flags one audited transaction at a time)."""
    environments = list(Environment.objects.all())
    tags = [Tag.objects.get_or_create(name=name)[0] for name in ("calling", "ocr", "payments")]
    flags = Flag.objects.bulk_create(
        [Flag(key=f"bulk-{i:04d}", name=f"Bulk flag {i}") for i in range(start, start + count)]
    )
    FlagState.objects.bulk_create(
        [
            FlagState(
                flag=flag,
                environment=env,
                mode=MODES[(i + env.position) % len(MODES)],
                percentage=(i * 7) % 101,
                allowlist=[f"user-{i}", f"user-{i + 1}"] if i % 3 == 0 else [],
            )
            for i, flag in enumerate(flags, start=start)
            for env in environments
        ]
    )
    through = Flag.tags.through
    through.objects.bulk_create(
        [through(flag_id=flag.pk, tag_id=tags[i % 3].pk) for i, flag in enumerate(flags)]
    )
    return flags


def cell_html(content: bytes, key: str, environment: str) -> str:
    """The <td> of one cell in a rendered page."""
    html = content.decode()
    marker = html.index(f'data-testid="cell-{key}-{environment}"')
    start = html.rindex("<td", 0, marker)
    return html[start : html.index("</td>", marker)]


def rows_in(content: bytes) -> list[str]:
    return re.findall(r'data-testid="row-([^"]+)"', content.decode())


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
        allowlist=["pilot-1", "pilot-2"],
    )
    return flag


@pytest.fixture
def calling(release_manager, staging):
    flag = services.flag_create(
        actor=release_manager, key="calling", name="Outbound calling", tags=["calling"]
    )
    services.flag_state_set(actor=release_manager, flag=flag, environment=staging, mode="full")
    return flag


def test_board__anonymous__sent_to_sign_in(client):
    response = client.get("/flags/")
    assert response.status_code == 302
    assert response.url.startswith("/accounts/login/")


def test_board__cells__show_mode_percentage_allowlist_and_version(client, developer, concierge):
    client.force_login(developer)
    response = client.get("/flags/")
    assert response.status_code == 200
    cell = cell_html(response.content, "ai-concierge", "staging")
    assert 'data-mode="percentage"' in cell
    assert "25%" in cell and 'style="width: 25%"' in cell
    assert "+2 keys" in cell
    assert 'data-version="2"' in cell and "v2" in cell
    off = cell_html(response.content, "ai-concierge", "production")
    assert 'data-mode="off"' in off and 'style="width: 0%"' in off
    assert "Killed" not in off


def test_board__production_column__marked_production_everywhere(client, developer, concierge):
    client.force_login(developer)
    html = client.get("/flags/").content.decode()
    assert 'class="env-head tier-production' in html
    assert "live users" in html
    assert "tier-production" in cell_html(html.encode(), "ai-concierge", "production")
    assert "tier-production" not in cell_html(html.encode(), "ai-concierge", "staging")


def test_board__developer__production_read_only_and_no_kill_switch_buttons(
    client, developer, concierge
):
    client.force_login(developer)
    html = client.get("/flags/").content.decode()
    assert html.count("read-only for you") == 1  # production only
    assert 'data-testid="env-kill-production"' not in html
    assert "Disable one tag" not in html


def test_board__oncall__kill_switch_button_per_environment(client, oncall, concierge):
    client.force_login(oncall)
    html = client.get("/flags/").content.decode()
    for slug in ("development", "staging", "production"):
        assert f'data-testid="env-kill-{slug}"' in html
    assert "Disable one tag" in html
    assert "read-only for you" not in html


def test_board__environment_kill_switch_engaged__header_and_every_cell_say_so(
    client, oncall, production, concierge, calling
):
    services.kill_switch_engage(
        actor=oncall, environment=production, reason="checkout errors at 4%"
    )
    client.force_login(oncall)
    response = client.get("/flags/")
    html = response.content.decode()
    assert 'data-testid="env-kill-engaged-production"' in html
    assert "checkout errors at 4%" in html
    assert 'data-testid="env-kill-production"' not in html  # engaged: the button releases
    for key in ("ai-concierge", "calling"):
        assert "Killed" in cell_html(response.content, key, "production")
        assert "Killed" not in cell_html(response.content, key, "staging")


def test_board__tag_kill_switch__only_that_tags_cells_marked(
    client, oncall, staging, concierge, calling
):
    services.kill_switch_engage(
        actor=oncall,
        environment=staging,
        scope="tag",
        tag=Tag.objects.get(name="calling"),
        reason="calling provider down",
    )
    client.force_login(oncall)
    response = client.get("/flags/")
    assert "Killed" in cell_html(response.content, "calling", "staging")
    assert 'data-mode="off"' in cell_html(response.content, "calling", "staging")
    assert "Killed" not in cell_html(response.content, "ai-concierge", "staging")
    assert 'data-testid="ks-staging-tag"' in response.content.decode()


def test_board__search__matches_key_name_or_description(client, developer, concierge, calling):
    client.force_login(developer)
    assert rows_in(client.get("/flags/", {"q": "concierge"}).content) == ["ai-concierge"]
    assert rows_in(client.get("/flags/", {"q": "AI CONC"}).content) == ["ai-concierge"]
    assert rows_in(client.get("/flags/", {"q": "nothing-like-this"}).content) == []


def test_board__tag_filter__only_flags_with_the_tag(client, developer, concierge, calling):
    client.force_login(developer)
    assert rows_in(client.get("/flags/", {"tag": "calling"}).content) == ["calling"]
    assert rows_in(client.get("/flags/").content) == ["ai-concierge", "calling"]


def test_board__htmx_filter__answers_the_grid_partial_only(client, developer, concierge, calling):
    client.force_login(developer)
    response = client.get("/flags/", {"q": "calling"}, **HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="board-grid"')
    assert "<html" not in html
    assert rows_in(response.content) == ["calling"]


def test_board__history_restore_request__answers_the_whole_page(client, developer, concierge):
    client.force_login(developer)
    response = client.get("/flags/", **HTMX, HTTP_HX_HISTORY_RESTORE_REQUEST="true")
    assert "<html" in response.content.decode()


def test_board__poll_with_current_fingerprint__204_then_200_after_a_change(
    client, developer, oncall, staging, concierge
):
    client.force_login(developer)
    html = client.get("/flags/").content.decode()
    poll_url = re.search(r'id="board-grid"[^>]*hx-get="([^"]+)"', html, re.S).group(1)
    poll_url = poll_url.replace("&amp;", "&")
    unchanged = client.get(poll_url, **HTMX)
    assert unchanged.status_code == 204
    assert unchanged.content == b""

    services.flag_state_set(
        actor=oncall, flag=concierge, environment=staging, mode="full", reason="go"
    )
    changed = client.get(poll_url, **HTMX)
    assert changed.status_code == 200
    assert 'data-mode="full"' in cell_html(changed.content, "ai-concierge", "staging")


def test_board__poll__a_new_flag_by_someone_else_changes_the_fingerprint(
    client, developer, concierge
):
    client.force_login(developer)
    html = client.get("/flags/").content.decode()
    poll_url = re.search(r'hx-get="(/flags/\?[^"]*known=[^"]+)"', html).group(1)
    services.flag_create(actor=developer, key="brand-new", name="Brand new")
    response = client.get(poll_url.replace("&amp;", "&"), **HTMX)
    assert response.status_code == 200
    assert "brand-new" in rows_in(response.content)


def test_board__poll_partial__cheap_when_nothing_changed(
    client, developer, django_assert_max_num_queries
):
    make_flags(60)
    client.force_login(developer)
    html = client.get("/flags/").content.decode()
    poll_url = re.search(r'hx-get="(/flags/\?[^"]*known=[^"]+)"', html).group(1)
    # Session, user, and the fingerprint (one aggregate).
    with django_assert_max_num_queries(3):
        assert client.get(poll_url.replace("&amp;", "&"), **HTMX).status_code == 204


def _board_queries(client, **params) -> tuple[int, bytes]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/flags/", params)
    assert response.status_code == 200
    return len(queries), response.content


def test_board__10_or_200_flags__same_number_of_queries(
    client, oncall, staging, production, django_assert_num_queries
):
    make_flags(10)
    services.kill_switch_engage(
        actor=oncall, environment=staging, scope="tag", tag=Tag.objects.get(name="ocr"), reason="r"
    )
    services.kill_switch_engage(actor=oncall, environment=production, reason="r")
    client.force_login(oncall)
    client.get("/flags/")  # warm the per-process caches (content types)
    ten, content = _board_queries(client)
    assert len(rows_in(content)) == 10

    make_flags(190, start=10)
    with django_assert_num_queries(ten):
        response = client.get("/flags/")
    assert len(rows_in(response.content)) == 50  # the first page
    # Killed cells computed without a query each: staging ocr flags, all of production.
    assert "Killed" in cell_html(response.content, "bulk-0001", "staging")  # tags[1] = ocr
    assert "Killed" not in cell_html(response.content, "bulk-0000", "staging")
    assert "Killed" in cell_html(response.content, "bulk-0000", "production")


def test_board__1000_flags__paginated_50_a_page_in_constant_queries(
    client, developer, django_assert_max_num_queries
):
    make_flags(1000)
    client.force_login(developer)
    client.get("/flags/")
    first, content = _board_queries(client)
    assert rows_in(content)[:2] == ["bulk-0000", "bulk-0001"]
    assert len(rows_in(content)) == 50
    assert "1\u201350 of 1000" in content.decode()
    with django_assert_max_num_queries(first):
        last = client.get("/flags/", {"page": 20}, **HTMX)
    assert rows_in(last.content)[-1] == "bulk-0999"
    assert "951\u20131000 of 1000" in last.content.decode()
    # A filtered page keeps its filter in the page links.
    filtered = client.get("/flags/", {"tag": "ocr"}).content.decode()
    assert "?tag=ocr&amp;page=2" in filtered
    assert "334 of 334" not in filtered and "1\u201350 of 333" in filtered


def test_board__page_out_of_range__last_page(client, developer):
    make_flags(60)
    client.force_login(developer)
    response = client.get("/flags/", {"page": 99})
    assert rows_in(response.content)[-1] == "bulk-0059"


def test_board__edit_partial__opens_the_editor_with_the_version(client, developer, concierge):
    client.force_login(developer)
    response = client.get("/flags/ai-concierge/environments/staging/edit", **HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith("<td")
    assert 'data-testid="editor"' in html
    assert 'name="version" value="2"' in html
    assert '<option value="percentage" selected>' in html
    assert "pilot-1\npilot-2" in html


def test_board__edit_partial__without_the_role_read_only_before_any_edit(
    client, auditor, concierge
):
    client.force_login(auditor)
    html = client.get("/flags/ai-concierge/environments/production/edit", **HTMX).content.decode()
    assert "Read-only for you: audrey has no role that may change a flag&#x27;s state" in html
    assert "A release manager or on-call makes production changes." in html
    assert 'data-testid="editor"' not in html and "Review change" not in html
    assert "Request approval" not in html  # an auditor asks for nothing


def test_board__edit_partial__developer_in_production__a_request_editor_not_a_change(
    client, developer, concierge
):
    client.force_login(developer)
    html = client.get("/flags/ai-concierge/environments/production/edit", **HTMX).content.decode()
    assert 'data-testid="request-form"' in html
    assert 'action="/flags/ai-concierge/environments/production/request"' in html
    assert "You may not change flags in Production directly." in html
    assert "Review change" not in html and "hx-post" not in html


def test_board__edit_without_htmx__a_whole_page_with_a_plain_form(client, developer, concierge):
    client.force_login(developer)
    response = client.get("/flags/ai-concierge/environments/staging/edit")
    html = response.content.decode()
    assert "<html" in html
    assert 'action="/flags/ai-concierge/environments/staging/"' in html
    assert "hx-post" not in html.split('data-testid="editor"')[1]


def test_board__cell_partial__cancel_answers_the_cell(client, developer, concierge):
    client.force_login(developer)
    response = client.get("/flags/ai-concierge/environments/staging/cell", **HTMX)
    assert 'data-testid="cell-ai-concierge-staging"' in response.content.decode()
    assert 'data-testid="editor"' not in response.content.decode()


def test_board__unknown_flag_or_environment__404(client, developer, concierge):
    client.force_login(developer)
    assert client.get("/flags/nope/environments/staging/edit", **HTMX).status_code == 404
    assert client.get("/flags/ai-concierge/environments/nope/edit", **HTMX).status_code == 404
    assert client.get("/flags/nope/").status_code == 404


def test_flag_detail__state_and_history_in_constant_queries(
    client, release_manager, staging, concierge, django_assert_num_queries
):
    client.force_login(release_manager)
    client.get("/flags/ai-concierge/?tab=history")
    with CaptureQueriesContext(connection) as few:
        client.get("/flags/ai-concierge/?tab=history")
    for percentage in range(30, 50):
        services.flag_state_set(
            actor=release_manager, flag=concierge, environment=staging, percentage=percentage
        )
    with django_assert_num_queries(len(few)):
        response = client.get("/flags/ai-concierge/?tab=history")
    assert (
        response.content.decode().count('data-testid="event-') == 22
    )  # create, the fixture, 20 more
    with django_assert_num_queries(len(few) - 2):  # the state tab reads no history
        client.get("/flags/ai-concierge/")


def test_nav__flags_link_on_every_page(client, developer):
    client.force_login(developer)
    html = client.get("/").content.decode()
    assert 'href="/flags/"' in html
