"""The approvals pages cost a fixed number of queries, however many requests, decisions and
checklist items there are; the nav badge costs one."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from approvals.models import ApprovalRequest, ChecklistItem, Decision
from approvals.presenters import awaiting_count
from releasecontrol.models import Environment

from .helpers import complete_checklist, request_change

pytestmark = pytest.mark.django_db

INBOX_MAX_QUERIES = 12
DETAIL_MAX_QUERIES = 30  # 2 per policy question (guardian), fixed in number


def many_requests(n: int, requester, deciders) -> None:
    """n production requests, each with 15 items and 2 decisions (rows built directly: the
    behaviour is the services', tested elsewhere)."""
    production = Environment.objects.get(slug="production")
    now = timezone.now()
    requests = ApprovalRequest.objects.bulk_create(
        ApprovalRequest(
            environment=production,
            action="test.flag.change",
            parameters={"flag": "new-checkout", "mode": "full"},
            preview={"items": [], "reduces_exposure": False},
            preview_hash="a" * 64,
            title=f"request {i}",
            requested_by=requester,
            expires_at=now + dt.timedelta(hours=72),
        )
        for i in range(n)
    )
    ChecklistItem.objects.bulk_create(
        ChecklistItem(request=r, position=p, section="Tests", text=f"item {p}")
        for r in requests
        for p in range(1, 16)
    )
    Decision.objects.bulk_create(
        Decision(request=r, revision=1, decider=d, decision="go", preview_hash="a" * 64)
        for r in requests
        for d in deciders
    )


def inbox_queries(client, query: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(f"/approvals/?{query}")
    assert response.status_code == 200
    return len(captured)


@pytest.mark.parametrize("query", ["view=awaiting", "view=all", "view=all&environment=production"])
def test_inbox__10_then_200_requests__same_queries(
    world, client, django_assert_max_num_queries, query
):
    client.force_login(world["rita"])
    many_requests(10, world["dev"], [world["rhea"], world["ravi"]])
    client.get("/approvals/")  # warm the per-user policy cache, as any earlier page does
    with django_assert_max_num_queries(INBOX_MAX_QUERIES):
        small = inbox_queries(client, query)

    many_requests(190, world["dev"], [world["rhea"], world["ravi"]])
    with django_assert_max_num_queries(INBOX_MAX_QUERIES):
        large = inbox_queries(client, query)

    assert small == large
    response = client.get(f"/approvals/?{query}")
    assert len(response.context["rows"]) == 25
    assert {r.checklist_total for r in response.context["rows"]} == {15}


def test_detail__more_decisions_and_items__same_queries(
    world, client, django_assert_max_num_queries
):
    client.force_login(world["rhea"])
    small = complete_checklist(request_change(world["dev"]), world["dev"])
    large = complete_checklist(request_change(world["dev"], title="large"), world["dev"])
    for n in range(15):
        ChecklistItem.objects.create(request=large, position=10 + n, section="More", text=f"{n}")
    for decider in ("rita", "ravi", "root"):
        Decision.objects.create(
            request=large,
            revision=1,
            decider=world[decider],
            decision="go",
            preview_hash="a" * 64,
            void=True,
            voided_at=timezone.now(),
        )
    client.get(f"/approvals/{small.pk}/")

    counts = []
    for request in (small, large):
        with (
            django_assert_max_num_queries(DETAIL_MAX_QUERIES),
            CaptureQueriesContext(connection) as captured,
        ):
            assert client.get(f"/approvals/{request.pk}/").status_code == 200
        counts.append(len(captured))

    assert counts[0] == counts[1]


def test_nav_badge__one_query_then_none_in_the_same_request(world, rf, django_assert_num_queries):
    request_change(world["dev"], title="awaiting")
    request_change(world["dev"], "staging", title="awaiting too")
    http = rf.get("/")
    http.user = world["rita"]
    awaiting_count(http)  # warms the per-user policy cache
    http = rf.get("/")
    http.user = world["rita"]

    with django_assert_num_queries(1):
        first = awaiting_count(http)
    with django_assert_num_queries(0):
        again = awaiting_count(http)

    assert first == again == 2


def test_nav_badge__every_page_loads_it__counts_what_awaits_me(
    world, client, django_assert_max_num_queries
):
    request_change(world["dev"], title="awaiting")
    client.force_login(world["rita"])
    client.get("/approvals/badge")  # the per-user policy cache, warm after any page

    page = client.get("/flags/").content.decode()
    with django_assert_max_num_queries(3):  # session, user, the count
        badge = client.get("/approvals/badge", HTTP_HX_REQUEST="true")

    assert 'hx-get="/approvals/badge" hx-trigger="load"' in page
    assert badge.content.decode().strip() == (
        '<span class="nav-badge" data-testid="approvals-badge" '
        'title="1 awaiting your decision">1</span>'
    )


def test_nav_badge__developer__nothing_awaits_and_no_count_query(world, client):
    request_change(world["rita"], title="not for a developer to decide")
    client.force_login(world["dev"])
    client.get("/approvals/badge")

    with CaptureQueriesContext(connection) as captured:
        badge = client.get("/approvals/badge")

    assert 'data-testid="approvals-badge-none"' in badge.content.decode()
    assert not [q for q in captured.captured_queries if "approvals_" in q["sql"]]
