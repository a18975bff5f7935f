"""The controls on a release's page: each says before it is pressed whether you may and why
not; pressing calls the release service (allowed, 403, 405, bad input, 409 with its sentence
and the request to make)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from flags.models import FlagState
from releasecontrol.models import AuditEvent
from rollouts.models import Release, ReleaseEvent

pytestmark = pytest.mark.django_db

HX = {"HX-Request": "true"}


def control_url(release, step):
    return reverse("rollouts:control", args=[release.pk, step])


def page(client, release) -> str:
    return client.get(reverse("rollouts:detail", args=[release.pk])).content.decode()


def control_html(html: str, step: str) -> str:
    start = html.index(f'data-testid="control-{step}"')
    return html[
        start : html.index('<div class="control ', start + 10) if step != "rollback" else None
    ]


def started(make_release, actor, environment, **extra) -> Release:
    from rollouts.services import release_start

    release = make_release(actor, environment, **extra)
    return release_start(actor=actor, release=release, reason="go")


# --- Said before pressing -------------------------------------------------------------------


def test_controls__staging_draft_release_manager__start_offered_the_rest_say_why_not(
    client, release_manager, staging, make_release
):
    release = make_release(release_manager, staging)
    client.force_login(release_manager)

    html = page(client, release)

    assert 'data-testid="control-start" data-may="true"' in html
    assert "Enters canary: percentage 5%." in control_html(html, "start")
    assert 'data-testid="control-pause" data-may="false"' in html
    assert "this release is draft; pause needs it in progress" in control_html(html, "pause")


def test_controls__production_draft__start_needs_an_approved_request_with_a_link(
    client, release_manager, production, make_release
):
    release = make_release(release_manager, production)
    client.force_login(release_manager)

    start = control_html(page(client, release), "start")

    assert 'data-may="false"' in start
    assert "Needs an approved release.start request" in start
    assert 'data-testid="link-start"' in start and "Request approval" in start
    assert "/approvals/new/?action=release.start&amp;environment=production" in start
    assert "parameters=%7B%22release%22%3A" + str(release.pk) in start


def test_controls__auditor__every_control_says_you_may_not(
    client, auditor, release_manager, staging, make_release
):
    release = started(make_release, release_manager, staging)
    client.force_login(auditor)

    html = page(client, release)

    pause = control_html(html, "pause")
    assert 'data-may="false"' in pause and "You may not:" in pause
    assert 'data-may="true"' not in html


def test_controls__production_next_stage_needs_go__advance_asks_for_release_advance(
    client, release_manager, production
):
    from tests.rollouts.pages import live_release

    release = live_release(environment="production")  # on canary; next "partial" needs a go
    client.force_login(release_manager)

    advance = control_html(page(client, release), "advance")

    assert "Needs an approved release.advance request" in advance
    assert "action=release.advance" in advance
    assert "%22stage%22%3A2" in advance


def test_controls__rollback__names_exactly_what_it_turns_off(
    client, release_manager, staging, make_release, flag
):
    release = started(make_release, release_manager, staging)
    client.force_login(release_manager)

    rollback = control_html(page(client, release), "rollback")

    assert 'data-testid="turns-off"' in rollback
    assert "new-checkout in staging: percentage 5% → off" in rollback


# --- Pressing ---------------------------------------------------------------------------------


def test_control_start__staging_release_manager__started_audited_and_the_page_part(
    client, release_manager, staging, make_release, flag
):
    release = make_release(release_manager, staging)
    client.force_login(release_manager)

    response = client.post(control_url(release, "start"), {"reason": "canary now"}, headers=HX)

    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="release-live"')
    assert 'data-testid="release-status">In progress' in html
    assert "Start: done." in html
    assert "release-changed" in response["HX-Trigger"]
    release.refresh_from_db()
    assert release.status == "in_progress"
    event = AuditEvent.objects.filter(action="release.start").latest("id")
    assert (event.actor_id, event.reason, event.outcome) == (release_manager.pk, "canary now", "ok")
    assert FlagState.objects.get(flag=flag, environment=staging).percentage == 5


def test_control_pause_resume__plain_forms__redirect_back_to_the_page(
    client, release_manager, staging, make_release
):
    release = started(make_release, release_manager, staging)
    client.force_login(release_manager)

    paused = client.post(control_url(release, "pause"), {"reason": "look at errors"})
    release.refresh_from_db()
    status_after_pause = release.status
    resumed = client.post(control_url(release, "resume"), {"reason": "fine"})
    release.refresh_from_db()

    assert paused.status_code == 303 and paused["Location"] == f"/releases/{release.pk}/"
    assert status_after_pause == "paused"
    assert resumed.status_code == 303 and release.status == "in_progress"


def test_control_advance__staging__enters_the_next_stage(
    client, release_manager, staging, make_release, flag
):
    release = started(make_release, release_manager, staging)
    client.force_login(release_manager)

    response = client.post(control_url(release, "advance"), {"reason": "errors flat"}, headers=HX)

    release.refresh_from_db()
    assert response.status_code == 200 and release.current_stage_index == 1
    assert FlagState.objects.get(flag=flag, environment=staging).mode == "full"


def test_control_rollback__staging__flags_off_release_rolled_back(
    client, oncall, release_manager, staging, make_release, flag
):
    release = started(make_release, release_manager, staging)
    client.force_login(oncall)

    response = client.post(control_url(release, "rollback"), {"reason": "errors"}, headers=HX)

    release.refresh_from_db()
    assert response.status_code == 200 and release.status == "rolled_back"
    assert FlagState.objects.get(flag=flag, environment=staging).mode == "off"
    assert 'data-live="false"' in response.content.decode(), "an ended release stops polling"


def test_control_start__production_without_approval__409_with_the_sentence_and_link(
    client, release_manager, production, make_release
):
    release = make_release(release_manager, production)
    client.force_login(release_manager)

    response = client.post(control_url(release, "start"), {"reason": "go"}, headers=HX)

    assert response.status_code == 409
    html = response.content.decode()
    assert 'data-testid="control-notice"' in html
    assert "requires an approved release.start request" in html
    assert 'data-testid="control-notice-link"' in html and "action=release.start" in html
    release.refresh_from_db()
    assert release.status == "draft"


def test_control_pause__draft__409_says_the_state(client, release_manager, staging, make_release):
    release = make_release(release_manager, staging)
    client.force_login(release_manager)

    response = client.post(control_url(release, "pause"), {"reason": "x"}, headers=HX)

    assert response.status_code == 409
    assert "pausing needs it in progress" in response.content.decode()


def test_control_pause__auditor__403_and_the_refusal_audited(
    client, auditor, release_manager, staging, make_release
):
    release = started(make_release, release_manager, staging)
    client.force_login(auditor)

    response = client.post(control_url(release, "pause"), {"reason": "x"}, headers=HX)

    assert response.status_code == 403
    assert "Pause: refused" in response.content.decode()
    denial = AuditEvent.objects.filter(action="release.pause").latest("id")
    assert (denial.actor_id, denial.outcome) == (auditor.pk, "denied")
    release.refresh_from_db()
    assert release.status == "in_progress"


def test_control_pause__outsider__403_and_the_refusal_audited(
    client, outsider, release_manager, staging, make_release
):
    release = started(make_release, release_manager, staging)
    client.force_login(outsider)

    response = client.post(control_url(release, "pause"), {"reason": "x"}, headers=HX)

    assert response.status_code == 403
    denial = AuditEvent.objects.filter(action="release.pause").latest("id")
    assert (denial.actor_id, denial.outcome) == (outsider.pk, "denied")


def test_control__get__405(client, release_manager, staging, make_release):
    release = make_release(release_manager, staging)
    client.force_login(release_manager)

    assert client.get(control_url(release, "start")).status_code == 405


def test_control__no_reason__400_and_nothing_changes(
    client, release_manager, staging, make_release
):
    release = make_release(release_manager, staging)
    client.force_login(release_manager)
    events = ReleaseEvent.objects.count()

    response = client.post(control_url(release, "start"), {"reason": "  "}, headers=HX)

    assert response.status_code == 400
    assert "Start: no reason" in response.content.decode()
    release.refresh_from_db()
    assert release.status == "draft" and ReleaseEvent.objects.count() == events


def test_control__unknown_step__404(client, release_manager, staging, make_release):
    release = make_release(release_manager, staging)
    client.force_login(release_manager)

    assert client.post(control_url(release, "launch"), {"reason": "x"}).status_code == 404


def test_control__missing_release__404(client, release_manager):
    client.force_login(release_manager)

    response = client.post(reverse("rollouts:control", args=[999999, "pause"]), {"reason": "x"})

    assert response.status_code == 404


def test_control__without_csrf_token__403(release_manager, staging, make_release):
    from django.test import Client

    release = make_release(release_manager, staging)
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(release_manager)

    response = strict.post(control_url(release, "start"), {"reason": "go"})

    assert response.status_code == 403
    release.refresh_from_db()
    assert release.status == "draft"
