"""The approvals pages: every view allowed, bad input (400), wrong method (405), missing (404),
conflicts (409); what the request page says before anyone acts; escaping. Refusals (403) and
the denials they leave are in test_pages_refusals.py (transactional)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from approvals.blackouts import blackout_window_create
from approvals.models import BlackoutWindow, Decision
from approvals.services import approval_request_update
from releasecontrol.models import AuditEvent

from .helpers import (
    complete_checklist,
    env,
    flag_state,
    fresh,
    go,
    last_event,
    request_change,
)

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def page(client, user, url, **extra):
    client.force_login(user)
    return client.get(url, **extra)


def ready(world, slug="production", **fields):
    """A pending request by the developer with its checklist complete."""
    return complete_checklist(request_change(world["dev"], slug, **fields), world["dev"])


# --- Inbox ----------------------------------------------------------------------------------


def test_inbox__release_manager__counts_each_view(world, client):
    awaiting = ready(world, title="awaiting rita")
    request_change(world["rita"], title="rita's own")
    approved = go(ready(world, title="approved"), world["rhea"])

    response = page(client, world["rita"], "/approvals/")

    html = response.content.decode()
    assert response.status_code == 200
    counts = response.context["views"]
    assert {name: count for name, _, count in counts} == {
        "awaiting": 1,
        "mine": 1,
        "approved": 1,
        "decided": 0,
        "expired": 0,
        "post_reviews": 0,
        "all": 3,
    }
    assert response.context["view"] == "awaiting"
    assert f'data-testid="request-{awaiting.pk}"' in html
    assert f'data-testid="request-{approved.pk}"' not in html


def test_inbox__developer__sees_own_requests_first(world, client):
    mine = request_change(world["dev"], title="mine")

    response = page(client, world["dev"], "/approvals/")

    assert response.context["view"] == "mine"
    assert [r.pk for r in response.context["rows"]] == [mine.pk]


def test_inbox__environment_and_status_filters__narrow_rows(world, client):
    staging = request_change(world["dev"], "staging", title="staging one")
    request_change(world["dev"], "production", title="production one")

    url = "/approvals/?view=all&environment=staging&status=pending"
    response = page(client, world["rita"], url)

    assert [r.pk for r in response.context["rows"]] == [staging.pk]
    assert {n: c for n, _, c in response.context["views"]}["all"] == 1


def test_inbox__htmx__answers_the_results_part(world, client):
    request_change(world["dev"])

    response = page(client, world["rita"], "/approvals/?view=all", **HTMX)

    html = response.content.decode()
    assert html.lstrip().startswith('<div id="inbox"')
    assert "<html" not in html


def test_inbox__keyset_pages__older_requests_follow(world, client):
    made = [request_change(world["dev"], title=f"r{n}").pk for n in range(30)]

    first = page(client, world["rita"], "/approvals/?view=all")
    before = first.context["rows"][-1].pk
    second = client.get(f"/approvals/?view=all&before={before}")

    assert [r.pk for r in first.context["rows"]] == sorted(made, reverse=True)[:25]
    assert [r.pk for r in second.context["rows"]] == sorted(made, reverse=True)[25:]
    assert 'data-testid="next-page"' in first.content.decode()
    assert 'data-testid="next-page"' not in second.content.decode()


@pytest.mark.parametrize(
    "query", ["view=nonsense", "status=flying", "before=abc", "before=-1", "environment=%3Cx%3E"]
)
def test_inbox__bad_filters__400_naming_them(world, client, query):
    response = page(client, world["rita"], f"/approvals/?{query}")

    assert response.status_code == 400
    assert 'data-testid="filter-errors"' in response.content.decode()


def test_inbox__post__405(world, client):
    client.force_login(world["rita"])
    assert client.post("/approvals/").status_code == 405


def test_inbox__signed_out__sent_to_sign_in(world, client):
    response = client.get("/approvals/")
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


# --- The request page -----------------------------------------------------------------------


def test_detail__production__red_banner_and_checkpoint(world, client):
    request = ready(world)

    html = page(client, world["rita"], f"/approvals/{request.pk}/").content.decode()

    assert 'data-testid="production-banner"' in html
    assert "tier-production-page" in html
    assert 'class="approval tier-production"' in html
    assert "CHECKPOINT: Approve deployment plan?" in html
    for option in ("<strong>yes</strong>", "<strong>adjust</strong>", "<strong>no</strong>"):
        assert option in html


def test_detail__staging__no_production_banner(world, client):
    request = ready(world, "staging")

    html = page(client, world["rita"], f"/approvals/{request.pk}/").content.decode()

    assert 'data-testid="production-banner"' not in html
    assert 'class="approval tier-staging"' in html


def test_detail__preview__each_item_before_after_with_version(world, client):
    request = ready(world)

    response = page(client, world["rita"], f"/approvals/{request.pk}/")

    (item,) = response.context["items"]
    assert (item.name, item.version) == ("new-checkout", 1)
    assert [(f.name, f.before, f.after, f.changed) for f in item.fields] == [
        ("allowlist", "none", "none", False),
        ("mode", "off", "percentage", True),
        ("percentage", "0", "10", True),
    ]
    html = response.content.decode()
    assert "at version 1" in html
    assert "Increases exposure." in html


def test_detail__release_manager__may_decide_and_confirmation_names_what_happens(world, client):
    request = ready(world)

    response = page(client, world["rita"], f"/approvals/{request.pk}/")

    choices = {c.name: c for c in response.context["choices"]}
    assert all(c.allowed for c in choices.values())
    assert choices["go"].confirm == (
        f"Your go on request #{request.pk}, revision 2: test.flag.change in Production, changing "
        "new-checkout: mode off → percentage, percentage 0 → 10. Go 1 of 1: the request is then "
        "approved and may be executed. Nothing changes until someone executes it."
    )
    assert "never be executed" in choices["no_go"].confirm
    execute = response.context["execute"]
    assert not execute.allowed
    assert execute.why == f"Request #{request.pk} is pending: only an approved request is executed."


def test_detail__requesting_release_manager__told_before_acting_that_they_never_decide(
    world, client
):
    request = complete_checklist(request_change(world["rita"]), world["rita"])

    response = page(client, world["rita"], f"/approvals/{request.pk}/")

    html = response.content.decode()
    assert response.context["decide_blocked"] == (
        "Refused: the requester never decides their own request."
    )
    assert 'data-testid="decide-blocked"' in html
    assert 'data-testid="decide-go"' not in html
    assert not AuditEvent.objects.filter(outcome="denied").exists()  # asking is not acting


def test_detail__developer__told_the_policy_refuses_them(world, client):
    request = ready(world)

    response = page(client, world["dev"], f"/approvals/{request.pk}/")

    assert response.context["decide_blocked"] == (
        "Refused: dev has no role that may decide an approval request in production."
    )
    assert response.context["execute"].why.startswith(f"Request #{request.pk} is pending")


def test_detail__incomplete_checklist__go_blocked_adjust_allowed(world, client):
    request = request_change(world["dev"])

    response = page(client, world["rita"], f"/approvals/{request.pk}/")

    choices = {c.name: c for c in response.context["choices"]}
    assert not choices["go"].allowed
    assert choices["go"].why == (
        "A go needs the whole checklist: 1 required item(s) are not checked yet "
        "(see the checklist below)."
    )
    assert choices["adjust"].allowed and choices["no_go"].allowed
    assert 'data-testid="decide-go-blocked"' in response.content.decode()


def test_detail__approved__oncall_may_execute_and_release_manager_sees_one_go(world, client):
    request = go(ready(world), world["rhea"])

    response = page(client, world["omar"], f"/approvals/{request.pk}/")

    execute = response.context["execute"]
    assert execute.allowed, execute.why
    assert execute.confirm == (
        f"Execute request #{request.pk}: test.flag.change in Production now, changing "
        "new-checkout: mode off → percentage, percentage 0 → 10. This increases exposure."
    )
    assert response.context["valid_gos"] == 1


def test_detail__approved_then_state_drifted__execute_names_the_change(world, client):
    from flags.services import flag_state_set

    request = go(ready(world), world["rhea"])
    flag_state_set(
        actor=world["rita"],
        flag=flag_state().flag,
        environment=env("production"),
        mode="allowlist",
        allowlist=["a"],
        reason="hand change",
    )

    response = page(client, world["omar"], f"/approvals/{request.pk}/")

    why = response.context["execute"].why
    assert why.startswith(f"The state changed since request #{request.pk} was approved:")
    assert "mode 'off' -> 'allowlist'" in why


def test_detail__blackout_open__execute_blocked_with_the_window(world, client):
    request = go(ready(world), world["rhea"])
    now = dt.datetime.now(dt.UTC)
    blackout_window_create(
        actor=world["rita"],
        environment=env("production"),
        starts_at=now - dt.timedelta(hours=1),
        ends_at=now + dt.timedelta(hours=1),
        reason="Quarter close",
    )

    response = page(client, world["omar"], f"/approvals/{request.pk}/")

    assert "A blackout window is open in production" in response.context["execute"].why
    assert "Quarter close" in response.context["blackout"]


def test_detail__void_gos_struck_through_revisions_listed(world, client):
    request = go(ready(world), world["rhea"])
    approval_request_update(actor=world["dev"], request=fresh(request), impact="Also EU")

    html = page(client, world["rita"], f"/approvals/{request.pk}/").content.decode()

    decision = Decision.objects.get(request=request)
    assert decision.void
    assert f'data-testid="decision-{decision.pk}" data-void="true"' in html
    assert "<del>rhea</del>" in html
    for revision in (1, 2, 3):
        assert f'data-testid="revision-{revision}"' in html
    assert "edited impact (revision 3)" in html


def test_detail__history__audit_events_of_the_request(world, client):
    request = go(ready(world), world["rhea"])

    response = page(client, world["rita"], f"/approvals/{request.pk}/")

    actions = [row.event.action for row in response.context["history"]]
    assert actions == ["approval.decide", "approval.checklist.set", "approval.request.create"]


def test_detail__title_comment_evidence__escaped(world, client):
    request = request_change(world["dev"], title='<script>alert("t")</script>')
    from approvals.services import checklist_item_set

    checklist_item_set(
        actor=world["dev"],
        item=request.checklist.get(position=1),
        checked=True,
        evidence='<img src=x onerror="alert(1)">',
    )
    from .helpers import decide

    decide(request, world["rhea"], "adjust", comment="<b onmouseover=alert(2)>fix</b>")

    html = page(client, world["rita"], f"/approvals/{request.pk}/").content.decode()

    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&quot;t&quot;)&lt;/script&gt;" in html
    assert "<img src=x" not in html and "&lt;img src=x" in html
    assert "<b onmouseover" not in html and "&lt;b onmouseover=alert(2)&gt;" in html


def test_detail__evidence_link__http_only_shown_as_link(world, client):
    request = request_change(world["dev"])
    from approvals.services import checklist_item_set

    checklist_item_set(
        actor=world["dev"],
        item=request.checklist.get(position=1),
        checked=True,
        evidence="https://ci.example/run/81",
    )

    html = page(client, world["rita"], f"/approvals/{request.pk}/").content.decode()

    assert '<a href="https://ci.example/run/81" rel="noopener noreferrer"' in html


def test_detail__missing__404(world, client):
    assert page(client, world["rita"], "/approvals/999999/").status_code == 404


def test_detail__post__405(world, client):
    request = request_change(world["dev"])
    client.force_login(world["rita"])
    assert client.post(f"/approvals/{request.pk}/").status_code == 405


# --- Deciding -------------------------------------------------------------------------------


def decide_post(client, user, request, decision="go", comment="", preview_hash=None, **extra):
    client.force_login(user)
    return client.post(
        f"/approvals/{request.pk}/decisions",
        {
            "decision": decision,
            "comment": comment,
            "preview_hash": preview_hash or fresh(request).preview_hash,
        },
        **extra,
    )


def test_decide__go_in_place__approved_event_and_toast(world, client):
    request = ready(world)

    response = decide_post(client, world["rita"], request, **HTMX)

    assert response.status_code == 200
    assert response.content.decode().lstrip().startswith('<div id="approval-detail"')
    assert fresh(request).status == "approved"
    event = last_event("approval.decide")
    assert (event.actor, event.after["decision"], event.after["status"]) == (
        world["rita"],
        "go",
        "approved",
    )
    trigger = json.loads(response["HX-Trigger"])["approval-changed"]
    assert trigger["message"] == f"Your go is recorded: request #{request.pk} is approved."


def test_decide__plain_form__redirects_with_message(world, client):
    request = ready(world)

    response = decide_post(client, world["rita"], request)

    assert response.status_code == 303
    assert response["Location"] == f"/approvals/{request.pk}/"
    assert fresh(request).status == "approved"


def test_decide__adjust_without_comment__400_confirmation_kept_open(world, client):
    request = ready(world)

    response = decide_post(client, world["rita"], request, decision="adjust", **HTMX)

    assert response.status_code == 400
    assert "Say what must change, or why not." in response.content.decode()
    assert 'data-testid="decide-adjust" open' in response.content.decode()
    assert fresh(request).status == "pending"


@pytest.mark.parametrize(
    "fields",
    [
        {"decision": "maybe", "preview_hash": "a" * 64},
        {"decision": "go", "preview_hash": "not-a-hash"},
        {"decision": "go"},
        {"decision": "go", "preview_hash": "a" * 64, "comment": "x" * 2001},
    ],
)
def test_decide__bad_input__400_nothing_decided(world, client, fields):
    request = ready(world)
    client.force_login(world["rita"])

    response = client.post(f"/approvals/{request.pk}/decisions", fields, **HTMX)

    assert response.status_code == 400
    assert not Decision.objects.exists()


def test_decide__stale_hash__409_with_the_new_revision(world, client):
    request = ready(world)
    stale = request.preview_hash
    approval_request_update(actor=world["dev"], request=fresh(request), impact="more")

    response = decide_post(client, world["rita"], request, preview_hash=stale, **HTMX)

    assert response.status_code == 409
    assert "changed since you read it (now revision 3" in response.content.decode()
    assert not Decision.objects.exists()


def test_decide__go_on_incomplete_checklist__400(world, client):
    request = request_change(world["dev"])

    response = decide_post(client, world["rita"], request, **HTMX)

    assert response.status_code == 400
    assert "Not checked yet: Tests passed: Unit tests passed (X/Y)" in response.content.decode()


def test_decide__get__405(world, client):
    request = ready(world)
    assert page(client, world["rita"], f"/approvals/{request.pk}/decisions").status_code == 405


# --- Executing ------------------------------------------------------------------------------


def test_execute__oncall__flag_changed_and_event_links_approvers(world, client):
    request = go(ready(world), world["rhea"])
    client.force_login(world["omar"])

    response = client.post(f"/approvals/{request.pk}/execute", {"reason": "window open"}, **HTMX)

    assert response.status_code == 200, response.content.decode()
    state = flag_state()
    assert (state.mode, state.percentage) == ("percentage", 10)
    assert fresh(request).status == "executed"
    event = last_event("approval.execute")
    assert (event.actor, event.reason) == (world["omar"], "window open")
    assert event.after["approval"]["approvers"] == ["rhea"]
    assert 'data-testid="executed"' in response.content.decode()


def test_execute__empty_reason__400_nothing_changed(world, client):
    request = go(ready(world), world["rhea"])
    client.force_login(world["omar"])

    response = client.post(f"/approvals/{request.pk}/execute", {"reason": "  "}, **HTMX)

    assert response.status_code == 400
    assert flag_state().mode == "off"


def test_execute__not_approved__409(world, client):
    request = ready(world)
    client.force_login(world["omar"])

    response = client.post(f"/approvals/{request.pk}/execute", {"reason": "now"}, **HTMX)

    assert response.status_code == 409
    assert "only an approved request is executed" in response.content.decode()


def test_execute__get__405(world, client):
    request = go(ready(world), world["rhea"])
    assert page(client, world["omar"], f"/approvals/{request.pk}/execute").status_code == 405


# --- Checklist ------------------------------------------------------------------------------


def check_post(client, user, request, position, **fields):
    client.force_login(user)
    item = request.checklist.get(position=position)
    return client.post(f"/approvals/{request.pk}/checklist/{item.pk}", fields, **HTMX)


def test_checklist__check_with_evidence__new_revision_shown(world, client):
    request = request_change(world["dev"])

    response = check_post(
        client, world["dev"], request, 1, checked="1", evidence="https://ci.example/run/81"
    )

    assert response.status_code == 200
    item = request.checklist.get(position=1)
    assert (item.checked, item.checked_by, item.evidence) == (
        True,
        world["dev"],
        "https://ci.example/run/81",
    )
    assert fresh(request).revision == 2
    assert 'data-testid="item-1" data-checked="true"' in response.content.decode()


def test_checklist__uncheck__keeps_evidence(world, client):
    request = ready(world)

    response = check_post(client, world["dev"], request, 1, checked="0")

    assert response.status_code == 200
    item = request.checklist.get(position=1)
    assert (item.checked, item.evidence) == (False, "412/412 passed")


@pytest.mark.parametrize(
    "evidence", ["javascript:alert(1)", "data:text/html,x", "ftp://files.example/x"]
)
def test_checklist__non_http_link__400_unchecked(world, client, evidence):
    request = request_change(world["dev"])

    response = check_post(client, world["dev"], request, 1, checked="1", evidence=evidence)

    assert response.status_code == 400
    assert "must be an http(s) URL" in response.content.decode()
    assert not request.checklist.get(position=1).checked


def test_checklist__evidence_required_but_missing__400(world, client):
    request = request_change(world["dev"])

    response = check_post(client, world["dev"], request, 1, checked="1", evidence="")

    assert response.status_code == 400
    assert "needs evidence" in response.content.decode()


def test_checklist__bad_checked_value__400(world, client):
    request = request_change(world["dev"])
    assert check_post(client, world["dev"], request, 1, checked="yes").status_code == 400


def test_checklist__item_of_another_request__404(world, client):
    request, other = request_change(world["dev"]), request_change(world["dev"], title="other")
    client.force_login(world["dev"])
    item = other.checklist.get(position=1)

    response = client.post(f"/approvals/{request.pk}/checklist/{item.pk}", {"checked": "1"})

    assert response.status_code == 404


def test_checklist__get__405(world, client):
    request = request_change(world["dev"])
    item = request.checklist.get(position=1)
    url = f"/approvals/{request.pk}/checklist/{item.pk}"
    assert page(client, world["dev"], url).status_code == 405


# --- Blackout windows -----------------------------------------------------------------------


def test_blackouts__weekly_by_release_manager__created_in_its_zone(world, client):
    client.force_login(world["rita"])

    response = client.post(
        "/approvals/blackouts/production/new",
        {
            "kind": "weekly",
            "day": "fri",
            "start": "15:00",
            "end_day": "mon",
            "end": "08:00",
            "time_zone": "Europe/Berlin",
            "reason": "Weekend freeze",
        },
        **HTMX,
    )

    assert response.status_code == 200
    window = BlackoutWindow.objects.get()
    assert (window.day, window.end_day, window.time_zone) == (4, 0, "Europe/Berlin")
    assert str(window) in response.content.decode()
    assert last_event("blackout.create").actor == world["rita"]


def test_blackouts__one_off__wall_clock_read_in_the_zone(world, client):
    client.force_login(world["rita"])

    response = client.post(
        "/approvals/blackouts/production/new",
        {
            "kind": "one_off",
            "starts_at": "2026-03-20T18:00",
            "ends_at": "2026-03-21T06:00",
            "time_zone": "Europe/Berlin",
            "reason": "Migration night",
        },
    )

    assert response.status_code == 303
    window = BlackoutWindow.objects.get()
    assert window.starts_at == dt.datetime(2026, 3, 20, 17, 0, tzinfo=dt.UTC)  # CET is UTC+1
    assert window.ends_at == dt.datetime(2026, 3, 21, 5, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    "fields",
    [
        {"kind": "weekly", "day": "fri", "start": "15:00", "reason": "x"},
        {"kind": "one_off", "starts_at": "2026-03-20T18:00", "reason": "x"},
        {"kind": "one_off", "starts_at": "tomorrow", "ends_at": "later", "reason": "x"},
        {"kind": "weekly", "day": "fri", "start": "15:00", "end_day": "mon", "end": "08:00"},
        {
            "kind": "weekly",
            "day": "fri",
            "start": "15:00",
            "end_day": "mon",
            "end": "08:00",
            "time_zone": "Mars/Olympus",
            "reason": "x",
        },
        {
            "kind": "one_off",
            "starts_at": "2026-03-21T06:00",
            "ends_at": "2026-03-20T18:00",
            "reason": "backwards",
        },
        {"kind": "monthly", "reason": "x"},
    ],
)
def test_blackouts__bad_input__400_nothing_created(world, client, fields):
    client.force_login(world["rita"])

    response = client.post("/approvals/blackouts/production/new", fields, **HTMX)

    assert response.status_code == 400
    assert not BlackoutWindow.objects.exists()


def test_blackouts__delete_with_reason__gone_from_the_list(world, client):
    window = blackout_window_create(
        actor=world["rita"],
        environment=env("production"),
        weekly={"day": "fri", "start": "15:00", "end_day": "mon", "end": "08:00"},
        reason="Weekend",
    )
    client.force_login(world["rhea"])

    response = client.post(
        f"/approvals/blackouts/windows/{window.pk}/delete", {"reason": "no longer"}, **HTMX
    )

    assert response.status_code == 200
    assert f'data-testid="window-{window.pk}"' not in response.content.decode()
    window.refresh_from_db()
    assert window.deleted_by == world["rhea"]


def test_blackouts__delete_without_reason__400_kept(world, client):
    window = blackout_window_create(
        actor=world["rita"],
        environment=env("production"),
        weekly={"day": "fri", "start": "15:00", "end_day": "mon", "end": "08:00"},
        reason="Weekend",
    )
    client.force_login(world["rhea"])

    response = client.post(f"/approvals/blackouts/windows/{window.pk}/delete", {}, **HTMX)

    assert response.status_code == 400
    window.refresh_from_db()
    assert window.deleted_at is None


def test_blackouts__developer__list_read_only(world, client):
    response = page(client, world["dev"], "/approvals/blackouts/production/")

    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-testid="read-only"' in html and 'data-testid="blackout-form"' not in html
    assert 'data-testid="production-banner"' in html


def test_blackouts__unknown_environment__404(world, client):
    assert page(client, world["rita"], "/approvals/blackouts/nowhere/").status_code == 404


def test_blackouts__wrong_methods__405(world, client):
    client.force_login(world["rita"])
    assert client.post("/approvals/blackouts/production/").status_code == 405
    assert client.get("/approvals/blackouts/production/new").status_code == 405
    assert client.get("/approvals/blackouts/windows/1/delete").status_code == 405
