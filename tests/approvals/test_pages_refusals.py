"""Refusals on the approvals pages: a styled 403 in place with the service's reason, and the
`denied` audit event committed although the action rolled back."""

from __future__ import annotations

import pytest

from approvals.blackouts import blackout_window_create
from approvals.models import BlackoutWindow, Decision, PostReview
from releasecontrol.models import AuditEvent

from .helpers import arrange, complete_checklist, env, flag_state, fresh, request_change

pytestmark = pytest.mark.django_db(transaction=True)

HTMX = {"HTTP_HX_REQUEST": "true"}


def denial(user, action) -> AuditEvent:
    return AuditEvent.objects.get(actor=user, action=action, outcome="denied")


def test_decide__developer__403_in_place_and_denial_recorded(world, client):
    request = complete_checklist(request_change(world["dev"]), world["dev"])
    client.force_login(world["dev"])

    response = client.post(
        f"/approvals/{request.pk}/decisions",
        {"decision": "go", "preview_hash": request.preview_hash},
        **HTMX,
    )

    html = response.content.decode()
    assert response.status_code == 403
    assert html.lstrip().startswith('<div id="approval-detail"')
    assert "Refused: dev has no role that may decide an approval request" in html
    assert "recorded in the audit trail" in html
    assert denial(world["dev"], "approval.decide").target_id == str(request.pk)
    assert not Decision.objects.exists()


def test_decide__requesting_release_manager__403_plain_page_and_denial(world, client):
    request = complete_checklist(request_change(world["rita"]), world["rita"])
    client.force_login(world["rita"])

    response = client.post(
        f"/approvals/{request.pk}/decisions",
        {"decision": "go", "preview_hash": request.preview_hash},
    )

    html = response.content.decode()
    assert response.status_code == 403
    assert "<html" in html and 'data-testid="notice"' in html
    assert "Refused: the requester never decides their own request." in html
    assert "requester" in denial(world["rita"], "approval.decide").after["refused"]


def test_execute__developer__403_and_state_untouched(world, client, clock):
    request = arrange("approved", world, world["dev"], "production", clock)
    client.force_login(world["dev"])

    response = client.post(f"/approvals/{request.pk}/execute", {"reason": "now"}, **HTMX)

    assert response.status_code == 403
    assert "Refused:" in response.content.decode()
    assert flag_state().mode == "off"
    assert fresh(request).status == "approved"
    assert denial(world["dev"], "test.flag.change").target_id == str(request.pk)


def test_checklist__auditor__403_and_denial(world, client):
    request = request_change(world["dev"])
    item = request.checklist.get(position=1)
    client.force_login(world["audrey"])

    response = client.post(
        f"/approvals/{request.pk}/checklist/{item.pk}", {"checked": "1", "evidence": "ok"}, **HTMX
    )

    assert response.status_code == 403
    item.refresh_from_db()
    assert not item.checked
    assert denial(world["audrey"], "approval.checklist.set")


def test_blackouts__developer_create_and_delete__403_and_denials(world, client):
    window = blackout_window_create(
        actor=world["rita"],
        environment=env("production"),
        weekly={"day": "fri", "start": "15:00", "end_day": "mon", "end": "08:00"},
        reason="Weekend",
    )
    client.force_login(world["dev"])

    created = client.post(
        "/approvals/blackouts/production/new",
        {
            "kind": "weekly",
            "day": "sat",
            "start": "00:00",
            "end_day": "sun",
            "end": "23:00",
            "time_zone": "UTC",
            "reason": "mine",
        },
        **HTMX,
    )
    deleted = client.post(
        f"/approvals/blackouts/windows/{window.pk}/delete", {"reason": "gone"}, **HTMX
    )

    assert (created.status_code, deleted.status_code) == (403, 403)
    assert BlackoutWindow.objects.active().count() == 1
    assert denial(world["dev"], "blackout.create") and denial(world["dev"], "blackout.delete")


def test_post_review__closed_by_release_manager_refused_to_developer(world, client, clock):
    request = arrange("emergency_approved", world, world["dev"], "production", clock)
    from approvals.execution import approval_execute

    approval_execute(actor=world["omar"], request=fresh(request), reason="outage")
    url = f"/approvals/{request.pk}/post-review"

    client.force_login(world["dev"])
    refused = client.post(url, {"notes": "fine"}, **HTMX)
    client.force_login(world["rita"])
    empty = client.post(url, {"notes": "  "}, **HTMX)
    wrong_method = client.get(url)
    page = client.get(f"/approvals/{request.pk}/?view=post_reviews")
    closed = client.post(url, {"notes": "Root cause: cache stampede"}, **HTMX)

    assert (refused.status_code, empty.status_code, wrong_method.status_code) == (403, 400, 405)
    assert 'data-testid="close-review"' in page.content.decode()
    assert closed.status_code == 200
    review = PostReview.objects.get(request=request)
    assert (review.closed_by, review.notes) == (world["rita"], "Root cause: cache stampede")
    assert denial(world["dev"], "postreview.close")
