"""Delivering the outbox to real servers the tests start: email through Django's SMTP backend
to an aiosmtpd server, webhooks to an http.server that checks the signature with the
environment's secret; failures retried with exponential backoff (the clock moved by
time-machine), every attempt recorded; a silent endpoint holds up nothing else; two
deliverers never send a row twice; and the task through a real Celery worker."""

import datetime as dt
import threading
import time
import uuid

import pytest
from celery.contrib.testing.worker import start_worker
from django.db import transaction
from django.test import override_settings

from approvals.execution import approval_execute
from releasecontrol.celery import app
from releasecontrol.models import DeliveryAttempt, Environment, Notification, User
from releasecontrol.notifications.delivery import notifications_deliver
from releasecontrol.notifications.services import notification_enqueue
from releasecontrol.services import environment_configure
from releasecontrol.tasks import notifications_deliver as notifications_deliver_task
from tests.approvals import conftest as approvals_fixtures
from tests.approvals.helpers import complete_checklist, fresh, go, request_change

from .notification_servers import (
    WebhookServer,
    refused_url,
    silent_server,
    smtp_server,
    webhook_server,
)

clock = approvals_fixtures.clock
flag = approvals_fixtures.flag
flag_change = approvals_fixtures.flag_change
people = approvals_fixtures.people
short_checklist = approvals_fixtures.short_checklist
world = approvals_fixtures.world

SECRET = "whsec-test-0123456789abcdef"
T0 = dt.datetime(2026, 3, 4, 12, 0, tzinfo=dt.UTC)


def configure(slug="production", *, emails="", url="", secret=SECRET):
    return environment_configure(
        actor=User.system(),
        environment=Environment.objects.get(slug=slug),
        notification_emails=emails,
        webhook_url=url,
        webhook_secret=secret if url else "",
        reason="notifications",
    )


def enqueue(environment, event="test.event", n=1):
    for i in range(n):
        notification_enqueue(
            environment=environment,
            event=event,
            subject=f"Something happened ({i})",
            text="It happened.",
            payload={"n": i},
            link="/somewhere/",
        )


def attempts(notification):
    return list(
        DeliveryAttempt.objects.filter(notification=notification)
        .order_by("number")
        .values_list("number", "outcome", "status_code")
    )


# --- Email through a real SMTP server ----------------------------------------------------------


def test_notifications_deliver__approval_flow__real_smtp_server_receives_each_email(world):
    production = configure(emails="oncall@example.com, releases@example.com")
    dev, rhea, omar = world["dev"], world["rhea"], world["omar"]
    request = complete_checklist(request_change(dev), dev)
    go(request, rhea)
    approval_execute(actor=omar, request=fresh(request), reason="window open")

    with smtp_server() as smtp, override_settings(**smtp.settings()):
        counts = notifications_deliver()

    assert counts == {"delivered": 3, "retrying": 0, "failed": 0, "deferred": 0}
    # One destination's messages go out oldest first.
    assert [m["Subject"] for _, _, m in smtp.messages] == [
        f"[production] Request #{request.pk} was requested: 10% of checkout",
        f"[production] Request #{request.pk} is approved: 10% of checkout",
        f"[production] Request #{request.pk} was executed by omar: 10% of checkout",
    ]
    sender, recipients, approved = smtp.messages[1]
    assert sender == "release-control@example.com"
    assert recipients == ["oncall@example.com", "releases@example.com"]
    assert approved["X-Release-Control-Event"] == "approval.approved"
    body = approved.get_content()
    assert f"Request #{request.pk} in {production.name} is approved." in body
    assert f"/approvals/{request.pk}/" in body
    for row in Notification.objects.all():
        assert (row.status, row.attempts) == ("delivered", 1)
        assert attempts(row) == [(1, "delivered", None)]


@override_settings(SITE_URL="https://release.example.com")
def test_notifications_deliver__site_url_set__email_link_is_absolute(world):
    configure(emails="oncall@example.com")
    request = request_change(world["dev"])

    with smtp_server() as smtp, override_settings(**smtp.settings()):
        notifications_deliver()

    ((_, _, message),) = smtp.messages
    assert f"https://release.example.com/approvals/{request.pk}/" in message.get_content()


def test_notifications_deliver__smtp_server_refuses__attempt_records_its_reply_code(world, clock):
    configure(emails="oncall@example.com")
    request_change(world["dev"])

    with (
        smtp_server(refuse_with="554 Transaction failed") as smtp,
        override_settings(**smtp.settings()),
    ):
        counts = notifications_deliver()

    assert counts == {"delivered": 0, "retrying": 1, "failed": 0, "deferred": 0}
    row = Notification.objects.get()
    assert row.status == "pending" and row.attempts == 1
    attempt = row.delivery_attempts.get()
    assert (attempt.outcome, attempt.status_code) == ("failed", 554)
    assert "Transaction failed" in attempt.error


# --- Signed webhooks -------------------------------------------------------------------------


def test_notifications_deliver__webhook__receiver_verifies_the_signature_with_the_secret(world):
    with webhook_server(SECRET) as hook:
        configure(url=hook.url)
        request = request_change(world["dev"])

        counts = notifications_deliver()

    assert counts["delivered"] == 1
    (received,) = hook.received
    assert received.signature_valid
    # The same body and headers do not pass with any other secret.
    assert not WebhookServer(secret="another-secret").check(received.headers, received.body)
    row = Notification.objects.get()
    assert received.headers["X-Release-Control-Event"] == "approval.requested"
    assert received.headers["X-Release-Control-Delivery"] == str(row.pk)
    assert received.headers["Content-Type"] == "application/json"
    body = received.json
    assert body["event"] == "approval.requested" and body["environment"] == "production"
    assert body["data"]["request"]["id"] == request.pk
    assert body["data"]["request"]["requested_by"] == "dev"
    assert SECRET.encode() not in received.body
    assert attempts(row) == [(1, "delivered", 200)]


def test_notifications_deliver__webhook_500_then_refused__retried_with_backoff_until_the_limit(
    world, time_machine, settings
):
    settings.NOTIFICATION_RETRY_SECONDS = 30
    settings.NOTIFICATION_MAX_ATTEMPTS = 4
    time_machine.move_to(T0, tick=False)
    with webhook_server(SECRET, answers=[500]) as hook:
        configure(url=hook.url)
        enqueue(Environment.objects.get(slug="production"))
        row = Notification.objects.get()

        assert notifications_deliver()["retrying"] == 1  # 500
    # The server is gone now: connections to its port are refused.

    timeline = []
    for seconds in (29, 30, 89, 90, 209, 210, 100_000):
        time_machine.move_to(T0 + dt.timedelta(seconds=seconds), tick=False)
        counts = notifications_deliver()
        timeline.append((seconds, sum(counts.values())))

    # Attempts at 0, 30 (+30), 90 (+60), 210 (+120); nothing before each was due, nothing after
    # the fourth.
    assert timeline == [(29, 0), (30, 1), (89, 0), (90, 1), (209, 0), (210, 1), (100_000, 0)]
    row.refresh_from_db()
    assert row.status == "failed" and row.attempts == 4
    assert attempts(row) == [
        (1, "failed", 500),
        (2, "failed", None),
        (3, "failed", None),
        (4, "failed", None),
    ]
    first, *refused = row.delivery_attempts.order_by("number")
    assert first.error.startswith("HTTP 500")
    assert all("refused" in a.error.lower() for a in refused)
    assert [a.attempted_at - T0 for a in row.delivery_attempts.order_by("number")] == [
        dt.timedelta(seconds=s) for s in (0, 30, 90, 210)
    ]
    assert "refused" in row.last_error.lower()


def test_notifications_deliver__webhook_500_then_200__delivered_on_the_second_attempt(
    world, time_machine, settings
):
    settings.NOTIFICATION_RETRY_SECONDS = 30
    time_machine.move_to(T0, tick=False)
    with webhook_server(SECRET, answers=[500]) as hook:
        configure(url=hook.url)
        enqueue(Environment.objects.get(slug="production"))
        notifications_deliver()
        time_machine.move_to(T0 + dt.timedelta(seconds=30), tick=False)

        assert notifications_deliver()["delivered"] == 1

    row = Notification.objects.get()
    assert row.status == "delivered" and row.delivered_at == T0 + dt.timedelta(seconds=30)
    assert attempts(row) == [(1, "failed", 500), (2, "delivered", 200)]
    assert all(r.signature_valid for r in hook.received) and len(hook.received) == 2
    # A retry is signed afresh, with the same delivery id.
    assert {r.headers["X-Release-Control-Delivery"] for r in hook.received} == {str(row.pk)}


def test_notifications_deliver__webhook_removed_before_delivery__nothing_is_sent_unsigned(world):
    with webhook_server(SECRET) as hook:
        configure(url=hook.url)
        enqueue(Environment.objects.get(slug="production"))
        configure(url="")  # the URL and its secret removed

        notifications_deliver()

    assert hook.received == []
    attempt = Notification.objects.get().delivery_attempts.get()
    assert attempt.outcome == "failed" and "no webhook secret" in attempt.error


def test_notifications_deliver__silent_webhooks__hold_up_no_other_delivery(world, settings):
    settings.NOTIFICATION_TIMEOUT = 2.0
    with (
        silent_server() as silent_a,
        silent_server() as silent_b,
        webhook_server(SECRET) as hook,
    ):
        configure("production", url=silent_a)
        configure("development", url=silent_b)
        configure("staging", url=hook.url)
        for slug in ("production", "development"):
            enqueue(Environment.objects.get(slug=slug), n=3)
        enqueue(Environment.objects.get(slug="staging"))

        started = time.monotonic()
        counts = notifications_deliver()
        elapsed = time.monotonic() - started

    assert counts == {"delivered": 1, "retrying": 2, "failed": 0, "deferred": 4}
    (received,) = hook.received
    assert received.signature_valid
    # Delivered while the silent endpoints were still being waited for.
    assert received.at - started < 1.5, received.at - started
    # Each silent endpoint cost one timeout, at the same time: not 2 x 3 x 2 s one by one.
    assert elapsed < 3.5, elapsed
    timed_out = DeliveryAttempt.objects.exclude(notification__environment__slug="staging")
    assert timed_out.count() == 2
    for attempt in timed_out:
        assert attempt.error == "timed out after 2 s"
        assert attempt.duration_ms >= 1900
    # The messages after each one that timed out wait for its retry, in order, untried.
    for slug in ("production", "development"):
        first, *waiting = Notification.objects.filter(environment__slug=slug).order_by("id")
        assert first.attempts == 1
        assert [(w.attempts, w.next_attempt_at) for w in waiting] == [
            (0, first.next_attempt_at)
        ] * 2


def test_notifications_deliver__refused_webhook__email_of_the_same_event_still_delivered(world):
    configure(emails="oncall@example.com", url=refused_url())
    enqueue(Environment.objects.get(slug="production"))

    with smtp_server() as smtp, override_settings(**smtp.settings()):
        counts = notifications_deliver()

    assert counts == {"delivered": 1, "retrying": 1, "failed": 0, "deferred": 0}
    assert len(smtp.messages) == 1


# --- Any number of deliverers ----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_notifications_deliver__two_deliverers_at_once__every_row_sent_exactly_once():
    with webhook_server(SECRET) as hook:
        configure(url=hook.url)
        enqueue(Environment.objects.get(slug="production"), n=30)
        errors = []

        def deliverer():
            try:
                while sum(notifications_deliver(limit=3).values()):
                    pass
            except Exception as error:  # reported below
                errors.append(error)
            finally:
                from django.db import connection

                connection.close()

        threads = [threading.Thread(target=deliverer) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

    assert errors == []
    ids = [r.headers["X-Release-Control-Delivery"] for r in hook.received]
    assert len(ids) == 30 and len(set(ids)) == 30
    assert set(Notification.objects.values_list("status", "attempts")) == {("delivered", 1)}


# --- Through a real Celery worker ------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_notifications_deliver_task__real_worker__delivers_email_and_signed_webhook():
    queue = f"test-notifications-{uuid.uuid4().hex}"  # no other worker takes it
    assert notifications_deliver_task.name in app.tasks
    with (
        smtp_server() as smtp,
        webhook_server(SECRET) as hook,
        override_settings(**smtp.settings()),
    ):
        configure(emails="oncall@example.com", url=hook.url)
        with transaction.atomic():
            enqueue(Environment.objects.get(slug="production"), event="approval.approved")

        with start_worker(app, perform_ping_check=False, queues=[queue], shutdown_timeout=10):
            notifications_deliver_task.apply_async(queue=queue)
            deadline = time.monotonic() + 20
            while Notification.objects.filter(status="pending").exists():
                assert time.monotonic() < deadline, "not delivered within 20 s"
                time.sleep(0.1)

    assert set(Notification.objects.values_list("channel", "status")) == {
        ("email", "delivered"),
        ("webhook", "delivered"),
    }
    assert [m["X-Release-Control-Event"] for _, _, m in smtp.messages] == ["approval.approved"]
    assert len(hook.received) == 1 and hook.received[0].signature_valid
