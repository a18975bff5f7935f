"""Django admin shows the audit trail read-only, even to a superuser."""

import pytest

from releasecontrol.models import AuditEvent
from tests.factories import audit_event


@pytest.fixture
def event(system_user):
    return audit_event(actor=system_user, action="test.shown", reason="original")


def test_audit_admin__list__shows_events(client, admin_user, event):
    client.force_login(admin_user)

    response = client.get("/admin/releasecontrol/auditevent/")

    assert response.status_code == 200
    assert b"test.shown" in response.content


def test_audit_admin__change_page__is_read_only(client, admin_user, event):
    client.force_login(admin_user)

    response = client.get(f"/admin/releasecontrol/auditevent/{event.pk}/change/")

    assert response.status_code == 200
    assert b"original" in response.content
    assert b'name="_save"' not in response.content
    assert b'name="reason"' not in response.content


def test_audit_admin__post_change__does_not_change_the_event(client, admin_user, event):
    client.force_login(admin_user)

    response = client.post(
        f"/admin/releasecontrol/auditevent/{event.pk}/change/", {"reason": "rewritten"}
    )

    assert response.status_code == 403
    event.refresh_from_db()
    assert event.reason == "original"


def test_audit_admin__post_add__is_forbidden(client, admin_user, event):
    client.force_login(admin_user)
    count = AuditEvent.objects.count()

    response = client.post("/admin/releasecontrol/auditevent/add/", {"action": "forged"})

    assert response.status_code == 403
    assert AuditEvent.objects.count() == count


def test_audit_admin__delete__is_forbidden(client, admin_user, event):
    client.force_login(admin_user)

    response = client.post(f"/admin/releasecontrol/auditevent/{event.pk}/delete/", {"post": "yes"})

    assert response.status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk).exists()
