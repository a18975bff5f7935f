"""Passwords set in Django admin go through the audited service: authorized (superusers only),
recorded as user.password.set without the password."""

import pytest
from django.core.exceptions import PermissionDenied

from releasecontrol.models import AuditEvent, User
from releasecontrol.services import user_password_set

NEW_PASSWORD = "a-brand-new-passphrase-42"


def password_url(user) -> str:
    return f"/admin/releasecontrol/user/{user.pk}/password/"


def test_admin_password_change__superuser__set_and_audited_without_the_password(
    client, admin_user, developer
):
    client.force_login(admin_user)

    response = client.post(
        password_url(developer),
        {"usable_password": "true", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )

    assert response.status_code == 302
    assert User.objects.get(pk=developer.pk).check_password(NEW_PASSWORD)
    event = AuditEvent.objects.get(action="user.password.set")
    assert (event.actor, event.target_name, event.outcome) == (admin_user, "dev", "ok")
    assert event.after == {"usable_password": True}
    assert NEW_PASSWORD not in str(event.before) + str(event.after) + event.reason


def test_admin_password_change__disable_password_sign_in__audited(client, admin_user, developer):
    client.force_login(admin_user)

    response = client.post(
        password_url(developer), {"usable_password": "false", "unset-password": "1"}
    )

    assert response.status_code == 302
    assert not User.objects.get(pk=developer.pk).has_usable_password()
    event = AuditEvent.objects.get(action="user.password.set")
    assert (event.before, event.after) == ({"usable_password": True}, {"usable_password": False})


def test_admin_password_change__not_a_superuser__refused(client, release_manager, developer):
    client.force_login(release_manager)

    response = client.post(
        password_url(developer),
        {"usable_password": "true", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )

    assert response.status_code in (302, 403)  # admin sends non-staff to its sign-in
    assert not User.objects.get(pk=developer.pk).check_password(NEW_PASSWORD)
    assert not AuditEvent.objects.filter(action="user.password.set", outcome="ok").exists()


@pytest.mark.django_db(transaction=True)  # the refusal commits on a connection of its own
def test_user_password_set__release_manager__refused_and_recorded(release_manager, developer):

    with pytest.raises(PermissionDenied):
        user_password_set(actor=release_manager, user=developer, password=NEW_PASSWORD)

    denied = AuditEvent.objects.get(action="user.password.set")
    assert (denied.actor, denied.outcome) == (release_manager, "denied")
    assert NEW_PASSWORD not in str(denied.after)
