"""Django admin shows flags read-only and revokes SDK keys through the audited service."""

from flags.models import Flag, SdkKey
from flags.services import flag_create, sdk_key_issue
from releasecontrol.models import AuditEvent, User


def test_sdk_key_admin__revoke_action__revoked_and_audited(client, admin_user, production):
    issued = sdk_key_issue(actor=User.system(), environment=production, name="checkout-svc")
    client.force_login(admin_user)

    response = client.post(
        "/admin/flags/sdkkey/",
        {"action": "revoke_selected", "_selected_action": [issued.key.pk]},
    )

    assert response.status_code == 302
    assert SdkKey.objects.get(pk=issued.key.pk).revoked_at is not None
    event = AuditEvent.objects.filter(action="sdkkey.revoke").get()
    assert event.actor == admin_user and event.environment_id == "production"


def test_flag_admin__change_form__read_only(client, admin_user, developer):
    flag = flag_create(actor=developer, key="ro", name="Read only")
    client.force_login(admin_user)

    assert client.get(f"/admin/flags/flag/{flag.pk}/change/").status_code == 200
    response = client.post(f"/admin/flags/flag/{flag.pk}/change/", {"key": "renamed"})

    assert response.status_code == 403
    assert Flag.objects.get(pk=flag.pk).key == "ro"
    assert client.get("/admin/flags/flag/add/").status_code == 403
