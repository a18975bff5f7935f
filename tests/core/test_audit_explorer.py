"""The audit explorer (/audit/), one event's page, and the browser exports of exactly the
filtered set."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import re

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from releasecontrol.audit import (
    EXPORT_FIELDS,
    GENESIS_HASH,
    Target,
    canonical_json,
)
from releasecontrol.audit.selectors import AuditFilter, audit_events
from releasecontrol.audit.views import diff_rows, export_filename
from releasecontrol.models import AuditEvent, Environment, User
from tests.factories import audit_event

HTMX = {"HTTP_HX_REQUEST": "true"}
ROW = re.compile(r'data-event-id="(\d+)"')


def shown_ids(response) -> list[int]:
    return [int(i) for i in ROW.findall(response.content.decode())]


def stream(response) -> str:
    assert response.streaming, "exports stream"
    return b"".join(response.streaming_content).decode()


@pytest.fixture
def trail(
    system_user: User, release_manager: User, agent: User, production: Environment, staging
) -> dict[str, AuditEvent]:
    """A small, varied trail on top of what the accounts' creation recorded."""
    flag = Target("flag", "7", "new-checkout")
    return {
        "launch": audit_event(
            actor=release_manager,
            action="flag.state.set",
            environment=production,
            target=flag,
            before={"mode": "off", "percentage": 0, "allowlist": [], "version": 1},
            after={"mode": "percentage", "percentage": 10, "allowlist": [], "version": 2},
            reason="first 10% of customers",
        ),
        "agent_denied": audit_event(
            actor=agent,
            action="flag.state.set",
            environment=production,
            target=flag,
            after={"refused": "agents never execute production actions", "requested": {}},
            outcome="denied",
        ),
        "agent_staging": audit_event(
            actor=agent, action="flag.state.set", environment=staging, target=flag
        ),
        "kill": audit_event(
            actor=system_user,
            action="killswitch.engage",
            environment=production,
            target=Target("environment", str(production.pk), "production"),
            reason="gate broke: error rate 4.2%",
        ),
    }


# --- Who may read ----------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["auditor", "release_manager", "admin_user"])
def test_explorer__reader_roles_and_superuser__200(client: Client, request, who: str) -> None:
    client.force_login(request.getfixturevalue(who))

    response = client.get("/audit/")

    assert response.status_code == 200
    assert b'id="audit-results"' in response.content


@pytest.mark.parametrize("who", ["developer", "outsider"])
@pytest.mark.parametrize("path", ["/audit/", "/audit/charts/"])
def test_explorer__roles_without_view_audit_everywhere__403(
    client: Client, request, who: str, path: str
) -> None:
    client.force_login(request.getfixturevalue(who))

    assert client.get(path).status_code == 403


@pytest.mark.parametrize("path", ["/audit/", "/audit/charts/"])
def test_explorer__oncall_holding_view_audit__reads_it(client: Client, oncall, path: str) -> None:
    client.force_login(oncall)

    assert client.get(path).status_code == 200


def test_event_detail__developer__403(client: Client, developer: User, trail) -> None:
    client.force_login(developer)

    assert client.get(f"/audit/events/{trail['launch'].pk}/").status_code == 403


def test_explorer__anonymous__sent_to_sign_in(client: Client, db) -> None:
    response = client.get("/audit/")

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_explorer__post__405(client: Client, auditor: User) -> None:
    client.force_login(auditor)

    assert client.post("/audit/").status_code == 405


@pytest.mark.parametrize(("who", "shown"), [("auditor", True), ("developer", False)])
def test_nav__audit_link__shown_only_to_readers(
    client: Client, request, who: str, shown: bool
) -> None:
    cache.clear()
    client.force_login(request.getfixturevalue(who))

    html = client.get("/").content.decode()

    assert ('data-testid="nav-audit"' in html) is shown


# --- The list --------------------------------------------------------------------------------


def test_explorer__auditor__every_event_newest_first(client: Client, auditor: User, trail) -> None:
    client.force_login(auditor)

    response = client.get("/audit/")

    expected = list(AuditEvent.objects.order_by("-id").values_list("id", flat=True)[:50])
    assert shown_ids(response) == expected
    assert expected[0] == trail["kill"].pk


def test_explorer__rows__agents_system_denials_and_production_marked(
    client: Client, auditor: User, trail
) -> None:
    client.force_login(auditor)

    html = client.get("/audit/").content.decode()

    def row(event: AuditEvent) -> str:
        return re.search(rf'<tr class="([^"]*)" data-testid="event-{event.pk}".*?</tr>', html, re.S)

    denied = row(trail["agent_denied"])
    assert "by-agent" in denied.group(1) and "row-denied" in denied.group(1)
    assert "in-production" in denied.group(1)
    assert '<span class="kind kind-agent"' in denied.group(0)
    assert '<span class="outcome outcome-denied">denied</span>' in denied.group(0)
    assert '<span class="env-prod">production</span>' in denied.group(0)
    assert "refused: agents never execute production actions" in denied.group(0)
    assert 'href="/flags/new-checkout/"' in denied.group(0)
    staging = row(trail["agent_staging"])
    assert "in-production" not in staging.group(1) and "env-prod" not in staging.group(0)
    kill = row(trail["kill"])
    assert '<span class="kind kind-system"' in kill.group(0)
    assert 'href="/environments/production/"' in kill.group(0)
    launch = row(trail["launch"])
    assert "by-human" in launch.group(1) and "first 10% of customers" in launch.group(0)
    assert f'href="/audit/events/{trail["launch"].pk}/"' in launch.group(0)


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({"environment": "production"}, {"launch", "agent_denied", "kill"}),
        ({"actor_kind": "agent"}, {"agent_denied", "agent_staging"}),
        ({"actor": "rita", "action": "flag.state.set"}, {"launch"}),
        ({"outcome": "denied"}, {"agent_denied"}),
        ({"action": "killswitch."}, {"kill"}),
        ({"target_type": "flag", "target_id": "7"}, {"launch", "agent_denied", "agent_staging"}),
        (
            {"environment": "production", "outcome": "denied", "actor_kind": "agent"},
            {"agent_denied"},
        ),
    ],
)
def test_explorer__filter__only_matching_events(
    client: Client, auditor: User, trail, params: dict[str, str], names: set[str]
) -> None:
    client.force_login(auditor)

    response = client.get("/audit/", params)

    expected = {trail[name].pk for name in names}
    assert set(shown_ids(response)) & {e.pk for e in trail.values()} == expected
    assert set(shown_ids(response)) == set(
        audit_events(AuditFilter.from_params(params)).values_list("id", flat=True)
    )


def test_explorer__time_range__since_and_until_bound_the_list(
    client: Client, auditor: User, trail
) -> None:
    client.force_login(auditor)
    middle = trail["agent_denied"].created_at

    later = client.get("/audit/", {"since": middle.isoformat()})
    earlier = client.get("/audit/", {"until": middle.isoformat()})
    tomorrow = (middle + dt.timedelta(days=1)).date().isoformat()
    nothing = client.get("/audit/", {"since": tomorrow})

    assert min(shown_ids(later)) == trail["agent_denied"].pk
    assert max(shown_ids(earlier)) == trail["agent_denied"].pk
    assert shown_ids(nothing) == []
    assert b"No events match this filter." in nothing.content


def test_explorer__htmx__results_partial_with_filtered_export_links(
    client: Client, auditor: User, trail
) -> None:
    client.force_login(auditor)

    response = client.get("/audit/", {"environment": "production", "outcome": "denied"}, **HTMX)

    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith('<section id="audit-results"')
    assert "<html" not in body and "audit-filter" not in body
    assert shown_ids(response) == [trail["agent_denied"].pk]
    assert 'href="/audit/export.csv?environment=production&amp;outcome=denied"' in body
    assert 'href="/audit/export.jsonl?environment=production&amp;outcome=denied"' in body


def test_explorer__full_page__filter_form_is_htmx_and_keeps_values(
    client: Client, auditor: User, trail
) -> None:
    client.force_login(auditor)

    body = client.get("/audit/", {"environment": "production", "actor": "ci-bot"}).content.decode()

    form = re.search(r'<form id="audit-filter".*?>', body, re.S).group(0)
    assert 'hx-get="/audit/"' in form and 'hx-push-url="true"' in form
    assert 'hx-target="#audit-results"' in form
    assert '<option value="production" selected>' in body
    assert 'name="actor" value="ci-bot"' in body


def test_explorer__bad_filter__400_naming_the_field(client: Client, auditor: User) -> None:
    client.force_login(auditor)

    response = client.get("/audit/", {"since": "last tuesday", "outcome": "maybe"}, **HTMX)

    assert response.status_code == 400
    body = response.content.decode()
    assert "since: " in body and "is not a date" in body and "outcome: use one of" in body
    assert 'aria-disabled="true">Export CSV' in body
    assert client.get("/audit/", {"before": "abc"}).status_code == 400


def test_explorer__keyset_pages__older_link_keeps_filter_and_reaches_the_first_event(
    client: Client, auditor: User, system_user: User, production: Environment
) -> None:
    for n in range(120):
        audit_event(actor=system_user, action="test.page", environment=production, reason=str(n))
    client.force_login(auditor)
    expected = list(
        AuditEvent.objects.filter(action="test.page").order_by("-id").values_list("id", flat=True)
    )

    seen: list[int] = []
    url = "/audit/?action=test.page&environment=production"
    for _ in range(5):
        response = client.get(url, **HTMX)
        seen += shown_ids(response)
        older = re.search(
            r'href="(\?[^"]*before=\d+)"[^>]*data-testid="older"', response.content.decode()
        )
        if not older:
            break
        url = "/audit/" + older.group(1).replace("&amp;", "&")
        assert "action=test.page" in url and "environment=production" in url

    assert seen == expected  # 50 + 50 + 20, newest first, no gaps or repeats
    assert b"Newest" in response.content


def test_explorer__10_or_200_events__same_number_of_queries(
    client: Client, auditor: User, agent: User, production: Environment, django_assert_num_queries
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def add(n: int) -> None:
        for i in range(n):
            audit_event(
                actor=agent,
                action="flag.state.set",
                environment=production,
                target=Target("flag", str(i), f"flag-{i}"),
                after={"refused": "no", "requested": {}},
                outcome="denied",
            )

    add(10)
    client.force_login(auditor)
    client.get("/audit/")  # warm per-process caches (content types)
    with CaptureQueriesContext(connection) as ten:
        assert client.get("/audit/").status_code == 200

    add(190)
    with django_assert_num_queries(len(ten)):
        response = client.get("/audit/")
    assert len(shown_ids(response)) == 50
    older = re.search(r"before=(\d+)", response.content.decode()).group(1)
    with django_assert_num_queries(len(ten)):
        assert len(shown_ids(client.get("/audit/", {"before": older}))) == 50


def test_explorer__queries__a_fixed_handful(
    client: Client, auditor: User, trail, django_assert_max_num_queries
) -> None:
    client.force_login(auditor)
    client.get("/audit/")

    # session, user, the permission check, environments, the page of events, heartbeat
    with django_assert_max_num_queries(6):
        client.get("/audit/")


# --- One event -------------------------------------------------------------------------------


def test_event_detail__state_change__diff_reason_request_hashes_and_flag_link(
    client: Client, auditor: User, release_manager: User, trail
) -> None:
    # Given a production change with a before and an after
    event = trail["launch"]
    client.force_login(auditor)

    # When the auditor opens it
    response = client.get(f"/audit/events/{event.pk}/")

    # Then the key-level diff, reason, chain fields and the flag's link are there
    body = response.content.decode()
    assert response.status_code == 200
    rows = re.findall(r'<tr class="diff-(\w+)" data-key="([^"]+)">', body)
    assert rows[:2] == [("changed", "mode"), ("changed", "percentage")]
    assert ("same", "allowlist") in rows
    assert "&quot;off&quot;" in body and "&quot;percentage&quot;" in body
    assert "first 10% of customers" in body
    assert event.hash in body and event.prev_hash in body
    assert "hash recomputed from this event matches" in body
    previous = AuditEvent.objects.filter(id__lt=event.pk).latest("id")
    assert f'follows <a href="/audit/events/{previous.pk}/">#{previous.pk}</a>' in body
    assert 'data-testid="target-link"' in body and 'href="/flags/new-checkout/"' in body
    assert '<span class="env-prod">Production</span>' in body


@pytest.mark.django_db(transaction=True)  # the refusal commits on its own connection
def test_event_detail__recorded_in_a_request__shows_request_id_and_client_ip(
    client: Client, auditor: User, developer: User
) -> None:
    # Given a refusal recorded while serving a request
    client.force_login(developer)
    client.get("/audit/export.csv", HTTP_X_REQUEST_ID="req-export-42", REMOTE_ADDR="10.9.8.7")
    denied = AuditEvent.objects.filter(action="audit.export", outcome="denied").latest("id")
    client.force_login(auditor)

    # When the auditor opens it
    body = client.get(f"/audit/events/{denied.pk}/").content.decode()

    # Then it names the request and the address
    assert "<code>req-export-42</code>" in body and "<code>10.9.8.7</code>" in body
    assert "Refused because" in body


def test_event_detail__first_event__links_to_genesis(client: Client, auditor: User) -> None:
    client.force_login(auditor)
    first = AuditEvent.objects.order_by("id").first()

    body = client.get(f"/audit/events/{first.pk}/").content.decode()

    assert first.prev_hash == GENESIS_HASH
    assert "first event of the chain" in body


def test_event_detail__missing__404(client: Client, auditor: User) -> None:
    client.force_login(auditor)

    assert client.get("/audit/events/999999/").status_code == 404


def test_diff_rows__nested_added_removed__dotted_keys_changed_first() -> None:
    rows = diff_rows(
        {"mode": "off", "gone": 1, "rule": {"a": 1, "b": [1, 2]}},
        {"mode": "off", "new": True, "rule": {"a": 2, "b": [1, 2]}},
    )

    assert [(r.key, r.change) for r in rows] == [
        ("gone", "removed"),
        ("new", "added"),
        ("rule.a", "changed"),
        ("mode", "same"),
        ("rule.b", "same"),
    ]
    assert rows[2].before == "1" and rows[2].after == "2"
    assert diff_rows(None, None) == []
    assert [(r.key, r.after) for r in diff_rows(None, [1])] == [("(value)", "[1]")]


# --- Browser export ---------------------------------------------------------------------------


def test_export_csv__filter__exactly_the_filtered_events_with_hash_fields(
    client: Client, auditor: User, trail
) -> None:
    client.force_login(auditor)
    params = {"environment": "production", "actor_kind": "agent", "outcome": "denied"}

    response = client.get("/audit/export.csv", params)

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    disposition = response["Content-Disposition"]
    assert re.fullmatch(
        r'attachment; filename="audit-production-agent-denied-\d{8}T\d{6}Z\.csv"', disposition
    )
    rows = list(csv.DictReader(io.StringIO(stream(response))))
    expected = audit_events(AuditFilter.from_params(params)).order_by("id")
    assert [int(r["id"]) for r in rows] == list(expected.values_list("id", flat=True))
    assert [int(r["id"]) for r in rows] == [trail["agent_denied"].pk]
    assert tuple(rows[0]) == EXPORT_FIELDS
    assert rows[0]["hash"] == trail["agent_denied"].hash
    assert json.loads(rows[0]["after"])["refused"] == "agents never execute production actions"


def test_export__recorded_before_streaming_with_filter_format_and_last_id(
    client: Client, auditor: User, trail
) -> None:
    client.force_login(auditor)
    head = AuditEvent.objects.latest("id").pk

    response = client.get("/audit/export.jsonl", {"action": "flag.", "since": "2000-01-01"})

    # Recorded already, before a byte of the body was read
    event = AuditEvent.objects.filter(action="audit.export").latest("id")
    assert (event.outcome, event.actor_id) == ("ok", auditor.pk)
    assert event.after == {
        "format": "jsonl",
        "filter": {"since": "2000-01-01T00:00:00+00:00", "action": "flag."},
        "up_to_id": head,
    }
    assert response["X-Audit-Export-Up-To-Id"] == str(head)
    assert response["Content-Type"].startswith("application/jsonl")
    assert 'filename="audit-since-20000101T000000Z-flag-' in response["Content-Disposition"]
    lines = [json.loads(line) for line in stream(response).splitlines()]
    assert [line["id"] for line in lines] == sorted(
        AuditEvent.objects.filter(action__startswith="flag.").values_list("id", flat=True)
    )


def test_export__unfiltered__the_trail_up_to_the_export_and_the_chain_reverifies(
    client: Client, auditor: User, trail
) -> None:
    client.force_login(auditor)

    response = client.get("/audit/export.jsonl")
    later = audit_event(actor=auditor, action="test.after_the_export")

    rows = [json.loads(line) for line in stream(response).splitlines()]
    up_to = int(response["X-Audit-Export-Up-To-Id"])
    assert [r["id"] for r in rows] == list(
        AuditEvent.objects.filter(id__lte=up_to).order_by("id").values_list("id", flat=True)
    )
    assert later.pk not in {r["id"] for r in rows}
    assert "audit.export" not in {r["action"] for r in rows}  # not its own record
    # Anyone can re-verify it with hashlib and json alone.
    prev = GENESIS_HASH
    for row in rows:
        fields = {k: v for k, v in row.items() if k not in ("id", "prev_hash", "hash")}
        assert row["prev_hash"] == prev
        assert hashlib.sha256(prev.encode() + canonical_json(fields)).hexdigest() == row["hash"]
        prev = row["hash"]


def test_export__many_events__streamed_complete_and_in_order(
    client: Client, auditor: User, system_user: User
) -> None:
    for n in range(1205):
        audit_event(actor=system_user, action="test.bulk", reason=f"n{n}")
    client.force_login(auditor)

    response = client.get("/audit/export.csv", {"action": "test.bulk"})

    assert response.streaming and not response.has_header("Content-Length")
    rows = list(csv.DictReader(io.StringIO(stream(response))))
    assert [r["reason"] for r in rows] == [f"n{n}" for n in range(1205)]


@pytest.mark.django_db(transaction=True)  # the refusal commits on its own connection
def test_export__developer__403_and_the_refusal_is_audited(client: Client, developer: User) -> None:
    client.force_login(developer)

    response = client.get("/audit/export.csv", {"environment": "production"})

    assert response.status_code == 403
    denied = AuditEvent.objects.filter(action="audit.export").latest("id")
    assert (denied.outcome, denied.actor_id) == ("denied", developer.pk)
    assert denied.after["requested"] == {"format": "csv", "filter": {"environment": "production"}}


def test_export__bad_filter__400_and_nothing_recorded(client: Client, auditor: User) -> None:
    client.force_login(auditor)
    before = AuditEvent.objects.count()

    response = client.get("/audit/export.csv", {"actor_kind": "robot"})

    assert response.status_code == 400
    assert b"actor_kind" in response.content
    assert AuditEvent.objects.count() == before


def test_export__post__405(client: Client, auditor: User) -> None:
    client.force_login(auditor)

    assert client.post("/audit/export.csv").status_code == 405
    assert client.post("/audit/export.jsonl").status_code == 405


def test_export_filename__empty_filter__all_and_the_time() -> None:
    at = dt.datetime(2026, 11, 21, 22, 5, 1, tzinfo=dt.UTC)

    assert export_filename(AuditFilter(), "csv", at) == "audit-all-20261121T220501Z.csv"
    odd = AuditFilter(actor='bob "the" builder/../x', environment="production")
    assert export_filename(odd, "jsonl", at) == (
        "audit-production-bob-the-builder-..-x-20261121T220501Z.jsonl"
    )


def test_explorer__until_a_bare_date__includes_that_whole_day(
    client: Client, auditor: User, trail
) -> None:
    client.force_login(auditor)
    day = trail["kill"].created_at.date().isoformat()

    response = client.get("/audit/", {"until": day})

    assert trail["kill"].pk in shown_ids(response)


def test_explorer__htmx_filter__pushes_the_clean_address(client: Client, auditor: User) -> None:
    client.force_login(auditor)
    form = {"since": "", "environment": "production", "actor": "", "outcome": "denied"}

    response = client.get("/audit/", {**form, "before": "99"}, **HTMX)

    assert response["HX-Push-Url"] == "/audit/?environment=production&outcome=denied&before=99"
    assert client.get("/audit/", {"actor": ""}, **HTMX)["HX-Push-Url"] == "/audit/"


def test_audit_events__time_window__bounded_by_ids_and_exact(db, system_user, monkeypatch):
    import datetime as dt

    from releasecontrol import audit
    from releasecontrol.audit.selectors import AuditFilter, audit_events

    start = dt.datetime(2026, 5, 1, 12, tzinfo=dt.UTC)
    made = []
    for day in range(5):
        monkeypatch.setattr(audit.timezone, "now", lambda d=day: start + dt.timedelta(days=d))
        made.append(audit.audit_record(actor=system_user, action=f"test.day{day}"))

    window = AuditFilter.from_params({"since": "2026-05-02", "until": "2026-05-03"})

    assert [e.action for e in audit_events(window)] == ["test.day2", "test.day1"]
    assert list(audit_events(AuditFilter.from_params({"since": "2030-01-01"}))) == []
    assert "id" in str(audit_events(window).query).split("WHERE", 1)[1]
