"""Admins see every notification and each delivery attempt, read-only; they set an
environment's addresses and webhook through the audited service, the secret write-only."""

import datetime as dt
import logging

import pytest

from releasecontrol.models import AuditEvent, Environment, Notification
from releasecontrol.notifications.delivery import notifications_deliver
from releasecontrol.notifications.services import notification_enqueue
from releasecontrol.services import environment_configure

from .notification_servers import refused_url, webhook_server

SECRET = "whsec-admin-test-5f4e3d2c1b0a"
T0 = dt.datetime(2026, 3, 4, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def failed_twice(admin_user, production, time_machine, settings):
    """A webhook notification whose receiver answered 500, then refused the connection."""
    settings.NOTIFICATION_RETRY_SECONDS = 30
    time_machine.move_to(T0, tick=False)
    with webhook_server(SECRET, answers=[500]) as hook:
        environment_configure(
            actor=admin_user, environment=production, webhook_url=hook.url, webhook_secret=SECRET
        )
        notification_enqueue(
            environment=production,
            event="approval.requested",
            subject="Request #7 was requested: 10% of checkout",
            text="Someone asks.",
            payload={"request": {"id": 7}},
        )
        notifications_deliver()
    time_machine.move_to(T0 + dt.timedelta(seconds=30), tick=False)
    notifications_deliver()
    return Notification.objects.get()


def change_form(production, **values):
    form = {
        "approvals_required": production.approvals_required,
        "notification_emails": production.notification_emails,
        "webhook_url": production.webhook_url,
        "webhook_secret": "",
    }
    if production.require_approval_for_increase:
        form["require_approval_for_increase"] = "on"
    form.update(values)
    return form


def url_of(environment) -> str:
    return f"/admin/releasecontrol/environment/{environment.pk}/change/"


# --- The outbox, read-only -------------------------------------------------------------------


def test_notification_admin__list__shows_status_attempts_and_destination(
    client, admin_user, failed_twice
):
    client.force_login(admin_user)

    response = client.get("/admin/releasecontrol/notification/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "approval.requested" in page and failed_twice.webhook_url in page
    assert "Pending" in page


def test_notification_admin__change_page__every_attempt_visible_and_nothing_editable(
    client, admin_user, failed_twice
):
    client.force_login(admin_user)

    response = client.get(f"/admin/releasecontrol/notification/{failed_twice.pk}/change/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "HTTP 500" in page and "refused" in page.lower()
    assert page.count("Failed") >= 2  # both attempts' outcomes
    assert 'name="_save"' not in page
    assert SECRET not in page


@pytest.mark.parametrize(
    "path",
    ["notification/{pk}/change/", "notification/{pk}/delete/", "notification/add/"],
)
def test_notification_admin__post__forbidden_and_row_unchanged(
    client, admin_user, failed_twice, path
):
    client.force_login(admin_user)

    response = client.post(
        "/admin/releasecontrol/" + path.format(pk=failed_twice.pk),
        {"status": "delivered", "post": "yes"},
    )

    assert response.status_code == 403
    row = Notification.objects.get()
    assert (row.status, row.attempts) == ("pending", 2)


def test_delivery_attempt_admin__list__shows_codes_errors_and_durations(
    client, admin_user, failed_twice
):
    client.force_login(admin_user)

    response = client.get("/admin/releasecontrol/deliveryattempt/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "500" in page and "refused" in page.lower()


# --- The environment's channels ---------------------------------------------------------------


def test_environment_admin__webhook_secret__never_rendered_back(client, admin_user, production):
    environment_configure(
        actor=admin_user,
        environment=production,
        webhook_url="https://hooks.example.com/rc",
        webhook_secret=SECRET,
    )
    client.force_login(admin_user)

    response = client.get(url_of(production))

    assert response.status_code == 200
    page = response.content.decode()
    assert SECRET not in page
    assert "https://hooks.example.com/rc" in page
    assert 'type="password"' in page


def test_environment_admin__set_channels__saved_through_the_audited_service_secret_masked(
    client, admin_user, production
):
    client.force_login(admin_user)

    response = client.post(
        url_of(production),
        change_form(
            production,
            notification_emails="oncall@example.com, releases@example.com",
            webhook_url="https://hooks.example.com/rc",
            webhook_secret=SECRET,
        ),
    )

    assert response.status_code == 302, response.content[:2000]
    production.refresh_from_db()
    assert production.notification_email_list == ["oncall@example.com", "releases@example.com"]
    assert production.webhook_secret == SECRET
    event = AuditEvent.objects.get(action="environment.configure")
    assert event.actor == admin_user
    assert event.after == {
        "notification_emails": "oncall@example.com, releases@example.com",
        "webhook_url": "https://hooks.example.com/rc",
        "webhook_secret": "set",
    }
    assert SECRET not in str(event.before) + str(event.after)


def test_environment_admin__secret_left_empty__keeps_the_current_one(
    client, admin_user, production
):
    environment_configure(
        actor=admin_user,
        environment=production,
        webhook_url="https://hooks.example.com/rc",
        webhook_secret=SECRET,
    )
    client.force_login(admin_user)

    response = client.post(
        url_of(production),
        change_form(production, notification_emails="oncall@example.com"),
    )

    assert response.status_code == 302
    production.refresh_from_db()
    assert production.webhook_secret == SECRET
    assert AuditEvent.objects.filter(action="environment.configure").order_by(
        "id"
    ).last().after == {"notification_emails": "oncall@example.com"}


def test_environment_admin__remove_secret__removes_the_webhook_with_it(
    client, admin_user, production
):
    environment_configure(
        actor=admin_user,
        environment=production,
        webhook_url="https://hooks.example.com/rc",
        webhook_secret=SECRET,
    )
    client.force_login(admin_user)

    response = client.post(url_of(production), change_form(production, remove_webhook_secret="on"))

    assert response.status_code == 302
    production.refresh_from_db()
    assert (production.webhook_url, production.webhook_secret) == ("", "")
    assert AuditEvent.objects.filter(action="environment.configure").order_by(
        "id"
    ).last().after == {
        "webhook_url": "",
        "webhook_secret": "not set",
    }


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"webhook_url": "https://hooks.example.com/rc"}, "A webhook needs a secret"),
        ({"notification_emails": "oncall@example.com; nobody"}, "Not an email address: nobody"),
    ],
)
def test_environment_admin__bad_channels__form_error_and_nothing_saved(
    client, admin_user, production, values, message
):
    client.force_login(admin_user)

    response = client.post(url_of(production), change_form(production, **values))

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not AuditEvent.objects.filter(action="environment.configure").exists()
    production.refresh_from_db()
    assert production.webhook_url == "" and production.notification_emails == ""


# --- Logs -------------------------------------------------------------------------------------


def test_notifications_deliver__failed_webhook__log_names_neither_secret_nor_url(
    admin_user, production, caplog
):
    url = refused_url() + "?token=hook-path-credential"
    environment_configure(
        actor=admin_user, environment=production, webhook_url=url, webhook_secret=SECRET
    )
    notification_enqueue(
        environment=production, event="approval.requested", subject="s", text="t", payload={}
    )

    with caplog.at_level(logging.INFO):
        notifications_deliver()

    logged = caplog.text
    assert "notification.attempt_failed" in logged
    assert SECRET not in logged and "hook-path-credential" not in logged
    assert Environment.objects.get(pk=production.pk).webhook_secret == SECRET
