"""The on-call page: what is live and the blast radius, the big button (the typed name and a
reason, enforced here), partial rollbacks, the snapshot page and its Restore link; allowed,
403 with the refusal audited, 405, bad input; fixed query counts."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlparse

import pytest

from flags.models import KillSwitch
from flags.services import flag_create
from releasecontrol.models import AuditEvent, Environment
from rollouts.models import Release, Rollback
from tests.rollouts.factories import GateFactory, ReleaseEventFactory
from tests.rollouts.helpers import flags_on, live_release, mode_of

PAGE = "/oncall/production/"
PRESS = "/oncall/production/rollback"
PARTIAL = "/oncall/production/partial"


@pytest.fixture
def live(release_manager, production):
    flags = flags_on(release_manager, production)
    release = live_release(production, flags[0])
    GateFactory(release=release, name="errors", last_outcome="failure")
    ReleaseEventFactory(release=release, kind="halved", automatic=True, reason="errors at 7%")
    return release


def test_oncall_page__live_environment__blast_radius_and_the_red_button(client, oncall, live):
    client.force_login(oncall)
    html = client.get(PAGE).content.decode()

    assert 'data-testid="production-banner"' in html
    assert "Turns off <strong>3 flags</strong>" in html
    assert "stops <strong>1 live release</strong>" in html
    assert 'data-testid="rollback-button"' in html
    assert "2/2 canary (percentage 5%)" in html
    assert 'health-failure">failure' in html
    assert "errors at 7%" in html  # the automatic action
    assert "/audit/?environment=production" in html


def test_oncall_page__developer__no_button(client, developer, live):
    client.force_login(developer)
    html = client.get(PAGE).content.decode()
    assert 'data-testid="rollback-not-allowed"' in html
    assert 'data-testid="rollback-button"' not in html


def test_oncall_page__more_flags_and_releases__same_query_count(
    client, oncall, release_manager, production, live, django_assert_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.force_login(oncall)
    client.get(PAGE)
    with CaptureQueriesContext(connection) as few:
        client.get(PAGE)
    for n in range(5):
        flag = flag_create(actor=release_manager, key=f"more-{n}", name="more")
        flags_on(release_manager, production, {flag.key: {"mode": "full"}})
        release = live_release(production, flag, name=f"r{n}")
        GateFactory(release=release)
    with django_assert_num_queries(len(few)):
        assert "stops <strong>6 live releases</strong>" in client.get(PAGE).content.decode()


def test_oncall_rollback__name_typed_and_reason__everything_off_snapshot_page(
    client, oncall, production, live
):
    client.force_login(oncall)
    response = client.post(PRESS, {"confirm": "production", "reason": "checkout 5xx"})

    rollback = Rollback.objects.get()
    assert response.status_code == 303 and response["Location"] == f"/rollbacks/{rollback.pk}/"
    assert mode_of("new-checkout", production) == "off"
    assert Release.objects.get().status == "rolled_back"
    page = client.get(response["Location"]).content.decode()
    assert "production rolled back: 3 flag(s) turned off, 1 release(s) stopped" in page.lower()
    assert 'data-testid="snapshot-calling"' in page and "percentage 20%" in page
    assert "in_progress at stage 2 canary (percentage 5%)" in page
    assert 'data-testid="restore-request"' in page


@pytest.mark.parametrize(
    ("form", "says"),
    [
        ({"confirm": "staging", "reason": "x"}, "Type production to confirm"),
        ({"confirm": "production", "reason": "   "}, "Say why"),
        ({"reason": "x"}, "required"),
    ],
)
def test_oncall_rollback__wrong_name_or_no_reason__400_nothing_changes(
    client, oncall, production, live, form, says
):
    client.force_login(oncall)
    response = client.post(PRESS, form)
    assert response.status_code == 400
    assert says in response.content.decode()
    assert not Environment.objects.get(pk=production.pk).kill_switch_engaged
    assert not Rollback.objects.exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("who", ["developer", "auditor"])
def test_oncall_rollback__without_the_role__403_refusal_audited(
    request, client, production, live, who
):
    actor = request.getfixturevalue(who)
    client.force_login(actor)
    response = client.post(PRESS, {"confirm": "production", "reason": "panic"})
    assert response.status_code == 403
    denied = AuditEvent.objects.get(outcome="denied")
    assert (denied.action, denied.actor, denied.reason) == ("environment.rollback", actor, "panic")
    assert mode_of("new-checkout", production) == "full"


def test_oncall_rollback__get__405(client, oncall):
    client.force_login(oncall)
    assert client.get(PRESS).status_code == 405
    assert client.get(PARTIAL).status_code == 405


def test_oncall_partial__one_tag__only_its_flags_off(client, oncall, production, live):
    client.force_login(oncall)
    response = client.post(PARTIAL, {"scope": "tag", "tag": "calling", "reason": "calling only"})
    assert response.status_code == 303
    assert mode_of("calling", production) == "off"
    assert (mode_of("new-checkout", production), mode_of("ocr", production)) == (
        "full",
        "allowlist",
    )
    assert KillSwitch.objects.get().tag.name == "calling"
    assert not Environment.objects.get(pk=production.pk).kill_switch_engaged


def test_oncall_partial__one_flag__kill_switch_on_it(client, oncall, production, live):
    client.force_login(oncall)
    client.post(PARTIAL, {"scope": "flag", "flag": "ocr", "reason": "ocr wrong"})
    assert mode_of("ocr", production) == "off"
    assert mode_of("calling", production) == "percentage"
    assert KillSwitch.objects.get().flag.key == "ocr"


def test_oncall_partial__one_release__rolled_back_its_flags_off(client, oncall, production, live):
    client.force_login(oncall)
    response = client.post(PARTIAL, {"scope": "release", "release": live.pk, "reason": "bad"})
    assert response.status_code == 303
    assert Release.objects.get().status == "rolled_back"
    assert mode_of("new-checkout", production) == "off"
    assert mode_of("calling", production) == "percentage"
    assert not KillSwitch.objects.exists()


def test_oncall_partial__unknown_flag__400(client, oncall, live):
    client.force_login(oncall)
    response = client.post(PARTIAL, {"scope": "flag", "flag": "ghost", "reason": "x"})
    assert response.status_code == 400 and "No flag" in response.content.decode()


def test_rollback_restore_request__chosen_flags__prefilled_request_page(
    client, oncall, production, live
):
    client.force_login(oncall)
    client.post(PRESS, {"confirm": "production", "reason": "5xx"})
    rollback = Rollback.objects.get()
    response = client.post(
        f"/rollbacks/{rollback.pk}/restore", {"flags": ["ocr", "calling", "ghost"]}
    )
    assert response.status_code == 303
    url = urlparse(response["Location"])
    query = parse_qs(url.query)
    assert url.path == "/approvals/new/"
    assert (query["action"], query["environment"]) == (["rollback.restore"], ["production"])
    assert json.loads(query["parameters"][0]) == {
        "rollback": rollback.pk,
        "flags": ["calling", "ocr"],
    }
    page = client.get(response["Location"]).content.decode()
    assert "rollback.restore" in page and "calling in production" in page


def test_board_environment_kill_switch__is_the_rollback__releases_stopped(
    client, oncall, production, live
):
    client.force_login(oncall)
    response = client.post(
        "/flags/kill-switches/engage",
        {"scope": "environment", "environment": "production", "reason": "all down"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    rollback = Rollback.objects.get()
    html = response.content.decode()
    assert f"rollback {rollback.pk}: 3 flags turned off, 1 release stopped" in html
    assert f"/rollbacks/{rollback.pk}/" in html
    assert Release.objects.get().status == "rolled_back"


def test_dashboard__rolled_back__card_links_the_oncall_page_and_snapshot(
    client, oncall, production, live
):
    client.force_login(oncall)
    client.post(PRESS, {"confirm": "production", "reason": "5xx"})
    html = client.get("/").content.decode()
    assert 'href="/oncall/production/"' in html
    assert f'href="/rollbacks/{Rollback.objects.get().pk}/"' in html
    assert 'data-testid="nav-oncall"' in html
