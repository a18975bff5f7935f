"""The outbox: approvals write one notification row per channel of the environment inside
the action's own transaction, carrying no secret; nothing is published to the broker, so an
action succeeds with the broker unreachable and its notification goes out once delivery
runs."""

import contextlib
import datetime as dt
import json

import pytest
from celery import Celery
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from kombu.exceptions import OperationalError

from approvals.execution import approval_execute, approval_requests_expire
from releasecontrol.celery import app
from releasecontrol.models import AuditEvent, Environment, Notification
from releasecontrol.notifications.delivery import notifications_deliver
from releasecontrol.notifications.services import notification_enqueue
from releasecontrol.services import environment_configure
from releasecontrol.tasks import monitor_heartbeat
from tests.approvals import conftest as approvals_fixtures
from tests.approvals.helpers import complete_checklist, decide, fresh, go, request_change
from tests.flags.live import free_port

# The approvals suite's people, flag, checklist and clock, as fixtures of this module.
clock = approvals_fixtures.clock
flag = approvals_fixtures.flag
flag_change = approvals_fixtures.flag_change
people = approvals_fixtures.people
short_checklist = approvals_fixtures.short_checklist
world = approvals_fixtures.world

SECRET = "whsec-test-0123456789abcdef"
URL = "https://hooks.example.com/release-control"


def configure(environment, *, actor, emails="oncall@example.com, releases@example.com"):
    return environment_configure(
        actor=actor,
        environment=environment,
        notification_emails=emails,
        webhook_url=URL,
        webhook_secret=SECRET,
        reason="notifications on",
    )


@pytest.fixture
def production_notifies(world):
    return configure(Environment.objects.get(slug="production"), actor=world["root"])


def rows(event=None):
    queryset = Notification.objects.order_by("id")
    return list(queryset.filter(event=event) if event else queryset)


# --- Writing the outbox ----------------------------------------------------------------------


def test_notification_enqueue__emails_and_webhook__one_pending_row_per_channel(
    production_notifies,
):
    written = notification_enqueue(
        environment=production_notifies,
        event="approval.requested",
        subject="Request #1 was requested",
        text="Someone asks.",
        payload={"request": {"id": 1}},
        link="/approvals/1/",
    )

    assert [(n.channel, n.status, n.attempts) for n in written] == [
        ("email", "pending", 0),
        ("webhook", "pending", 0),
    ]
    email, webhook = rows()
    assert email.recipients == ["oncall@example.com", "releases@example.com"]
    assert webhook.webhook_url == URL and webhook.recipients == []


def test_notification_enqueue__environment_without_channels__writes_nothing(world):
    staging = Environment.objects.get(slug="staging")

    written = notification_enqueue(
        environment=staging, event="approval.requested", subject="s", text="t", payload={}
    )

    assert written == [] and rows() == []


def test_notification_enqueue__action_rolls_back__its_notification_is_gone(production_notifies):
    with contextlib.suppress(RuntimeError), transaction.atomic():
        notification_enqueue(
            environment=production_notifies,
            event="approval.requested",
            subject="s",
            text="t",
            payload={},
        )
        raise RuntimeError("the action failed after writing its notification")

    assert rows() == []


def test_notification_enqueue__secrets_in_payload__masked_before_they_are_stored(
    production_notifies,
):
    notification_enqueue(
        environment=production_notifies,
        event="test.secrets",
        subject="Token rcp_abcdefghijklmnop leaked?",
        text="Authorization: Bearer abc.def.ghi",
        payload={
            "api_token": "rcp_abcdefghijklmnop",
            "nested": {"webhook_secret": SECRET, "note": "key rcs_0123456789abcdef"},
            "items": [{"password": "hunter2"}],
            "flag": "new-checkout",
        },
    )

    stored = rows()[0]
    assert stored.payload == {
        "api_token": "[REDACTED]",
        "nested": {"webhook_secret": "[REDACTED]", "note": "key rcs_[REDACTED]"},
        "items": [{"password": "[REDACTED]"}],
        "flag": "new-checkout",
    }
    assert "rcp_abcdefghijklmnop" not in stored.subject
    assert "abc.def.ghi" not in stored.text


# --- Approvals write it, in their transaction -----------------------------------------------


def test_approval_lifecycle__requested_approved_executed__one_row_per_channel_each(
    production_notifies, world
):
    dev, rhea, omar = world["dev"], world["rhea"], world["omar"]

    request = complete_checklist(request_change(dev), dev)
    go(request, rhea)
    approval_execute(actor=omar, request=fresh(request), reason="window open")

    assert [(n.event, n.channel) for n in rows()] == [
        ("approval.requested", "email"),
        ("approval.requested", "webhook"),
        ("approval.approved", "email"),
        ("approval.approved", "webhook"),
        ("approval.executed", "email"),
        ("approval.executed", "webhook"),
    ]
    approved = rows("approval.approved")[0]
    assert approved.payload["request"]["id"] == request.pk
    assert approved.payload["request"]["status"] == "approved"
    assert approved.payload["decision"] == {
        "decision": "go",
        "by": "rhea",
        "comment": "",
        "revision": fresh(request).revision,
    }
    assert approved.link == f"/approvals/{request.pk}/"
    assert approved.subject == f"[production] Request #{request.pk} is approved: 10% of checkout"
    executed = rows("approval.executed")[0]
    assert executed.payload["approvers"] == ["rhea"] and executed.payload["actor"] == "omar"
    assert "Approved by rhea" in executed.text


def test_approval_decide__adjust_and_no_go__decided_with_the_comment(production_notifies, world):
    dev, rhea = world["dev"], world["rhea"]
    request = complete_checklist(request_change(dev), dev)

    decide(request, rhea, "adjust", comment="Use 5% first")

    decided = rows("approval.decided")[0]
    assert decided.payload["decision"]["decision"] == "adjust"
    assert decided.payload["request"]["status"] == "changes_requested"
    assert "Adjust by rhea: Use 5% first" in decided.text


def test_approval_requests_expire__expired_request__notified_as_the_system(
    production_notifies, world, clock
):
    request = request_change(world["dev"])

    clock.shift(dt.timedelta(hours=73))
    approval_requests_expire()

    expired = rows("approval.expired")
    assert [n.channel for n in expired] == ["email", "webhook"]
    assert expired[0].payload["actor"] == "system"
    assert expired[0].payload["request"]["id"] == request.pk


def test_approval_decide__requester_refused__writes_no_notification(production_notifies, world):
    rita = world["rita"]
    request = complete_checklist(request_change(rita), rita)
    before = len(rows())

    with pytest.raises(PermissionDenied, match="requester"):
        go(request, rita)

    assert len(rows()) == before


def test_notifications__payloads_and_audit__never_hold_the_webhook_secret(
    production_notifies, world
):
    dev, rhea, omar = world["dev"], world["rhea"], world["omar"]
    request = complete_checklist(request_change(dev), dev)
    go(request, rhea)
    approval_execute(actor=omar, request=fresh(request), reason="now")

    for row in rows():
        assert SECRET not in json.dumps(row.payload) + row.subject + row.text
    audited = json.dumps(list(AuditEvent.objects.values("before", "after", "reason")))
    assert SECRET not in audited


# --- Environment settings --------------------------------------------------------------------


def test_environment_configure__webhook_secret__audited_as_set_never_with_its_value(world):
    production = Environment.objects.get(slug="production")

    configure(production, actor=world["root"])
    environment_configure(
        actor=world["root"], environment=production, webhook_secret="rotated-secret-value"
    )

    first, second = AuditEvent.objects.filter(action="environment.configure").order_by("id")
    assert first.before["webhook_secret"] == "not set"
    assert first.after["webhook_secret"] == "set"
    assert first.after["webhook_url"] == URL
    assert second.before == {"webhook_secret": "set"}
    assert second.after == {"webhook_secret": "replaced"}
    production.refresh_from_db()
    assert production.webhook_secret == "rotated-secret-value"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"notification_emails": "oncall@example.com, not-an-address"}, "notification_emails"),
        ({"webhook_url": URL}, "webhook_secret"),
        ({"webhook_url": "ftp://hooks.example.com/x", "webhook_secret": SECRET}, "webhook_url"),
    ],
)
def test_environment_configure__bad_notification_settings__refused_naming_the_field(
    world, changes, field
):
    production = Environment.objects.get(slug="production")

    with pytest.raises(ValidationError) as refused:
        environment_configure(actor=world["root"], environment=production, **changes)

    assert field in refused.value.message_dict
    production.refresh_from_db()
    assert production.webhook_url == "" and production.notification_emails == ""


# --- The broker is not in the action's path --------------------------------------------------


@contextlib.contextmanager
def broker_unreachable(monkeypatch):
    """Make the current Celery app one whose broker nothing listens on (Celery reads
    CELERY_BROKER_URL from the environment before its own configuration)."""
    monkeypatch.setenv("CELERY_BROKER_URL", f"redis://127.0.0.1:{free_port()}/0")
    dead = Celery("broker-down", set_as_current=False)
    # So that a publish fails in a second instead of retrying for minutes.
    dead.conf.broker_connection_timeout = 1
    dead.conf.broker_transport_options = {"max_retries": 1, "interval_start": 0}
    dead.set_current()
    try:
        yield dead
    finally:
        app.set_current()
        monkeypatch.undo()


@pytest.mark.django_db(transaction=True)
def test_approval_actions__broker_unreachable__succeed_and_notify_once_delivery_runs(
    world, settings, monkeypatch
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    configure(Environment.objects.get(slug="production"), actor=world["root"])
    dev, rhea = world["dev"], world["rhea"]

    with broker_unreachable(monkeypatch):
        # Publishing would fail now: the broker really is out of reach.
        with pytest.raises(OperationalError):
            monitor_heartbeat.apply_async(retry=False)
        request = complete_checklist(request_change(dev), dev)
        go(request, rhea)

    assert fresh(request).status == "approved"
    assert [n.event for n in rows() if n.channel == "email"] == [
        "approval.requested",
        "approval.approved",
    ]
    settings.NOTIFICATION_TIMEOUT = 0.5  # the webhook at example.com is not reachable here
    notifications_deliver()
    assert sorted(m.subject for m in mail.outbox) == [
        f"[production] Request #{request.pk} is approved: 10% of checkout",
        f"[production] Request #{request.pk} was requested: 10% of checkout",
    ]
