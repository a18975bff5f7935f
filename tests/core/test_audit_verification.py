"""Chain verification: one walking code for `verify_audit` and the Celery task
`releasecontrol.audit.verify_chain`, whose progress lives in the database; a real worker on
Redis runs it; the browser starts it (auditors only, audited) and polls its progress."""

from __future__ import annotations

import datetime as dt
import time
import uuid

import pytest
from celery.contrib.testing.worker import start_worker
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from releasecontrol.audit import audit_verify
from releasecontrol.audit.verification import (
    TASK_NAME,
    audit_chain_walk,
    audit_verification_run,
    audit_verification_start,
)
from releasecontrol.celery import app
from releasecontrol.models import AuditEvent, AuditVerification, User, VerificationStatus
from tests.audit_bypass import tamper
from tests.factories import audit_event

HTMX = {"HTTP_HX_REQUEST": "true"}
WORKER_TIMEOUT = 30


def raw_sql(sql: str, params: list) -> None:
    # Exactly what an attacker with the table owner's rights could do.
    tamper(sql, params)


def make_events(count: int) -> list[AuditEvent]:
    system = User.system()
    return [audit_event(actor=system, action="test.walk", reason=f"n{n}") for n in range(count)]


@pytest.fixture
def own_queue(settings):
    """Tasks go to a queue of this test's own, so no other worker on the same Redis takes them."""
    settings.AUDIT_VERIFY_QUEUE = f"test-verify-{uuid.uuid4().hex}"
    return settings.AUDIT_VERIFY_QUEUE


# --- The walk ------------------------------------------------------------------------------


def test_audit_chain_walk__intact_chain_in_chunks__checks_every_event_and_reports_progress(db):
    events = make_events(7)
    progress: list[tuple[int, int]] = []

    report = audit_chain_walk(
        chunk_size=3, on_progress=lambda n, last, h: progress.append((n, last))
    )

    assert report.ok and report.checked == 7
    assert (report.last_id, report.last_hash) == (events[-1].pk, events[-1].hash)
    assert progress == [(3, events[2].pk), (6, events[5].pk), (7, events[6].pk)]


def test_audit_chain_walk__link_broken_at_a_chunk_boundary__names_the_event_after_the_gap(db):
    events = make_events(7)
    raw_sql("DELETE FROM releasecontrol_auditevent WHERE id = %s", [events[3].pk])

    report = audit_chain_walk(chunk_size=3)

    # Chunk two starts at events[4]: its prev_hash must match chunk one's last hash.
    assert report.first_broken_id == events[4].pk
    assert report.checked == 3
    assert "prev_hash" in report.problem
    assert report.last_id == events[2].pk


def test_audit_chain_walk__broken_inside_a_chunk__head_is_the_last_event_that_held(db):
    events = make_events(7)
    raw_sql("UPDATE releasecontrol_auditevent SET reason = 'x' WHERE id = %s", [events[4].pk])

    report = audit_chain_walk(chunk_size=3)

    assert report.first_broken_id == events[4].pk
    assert (report.checked, report.last_id, report.last_hash) == (4, events[3].pk, events[3].hash)


def test_audit_chain_walk__range__starts_from_the_stored_hash_before_it(db):
    events = make_events(6)
    raw_sql("UPDATE releasecontrol_auditevent SET reason = 'edited' WHERE id = %s", [events[0].pk])

    inside = audit_chain_walk(from_id=events[2].pk, to_id=events[4].pk, chunk_size=2)
    whole = audit_chain_walk(chunk_size=2)

    assert inside.ok and inside.checked == 3 and inside.last_id == events[4].pk
    assert whole.first_broken_id == events[0].pk


def test_audit_chain_walk__content_edited_inside_a_range__names_that_event(db):
    events = make_events(6)
    raw_sql("UPDATE releasecontrol_auditevent SET reason = 'edited' WHERE id = %s", [events[3].pk])

    report = audit_chain_walk(from_id=events[1].pk, to_id=events[4].pk, chunk_size=2)

    assert report.first_broken_id == events[3].pk
    assert report.checked == 2
    assert "content" in report.problem


def test_audit_chain_walk__agrees_with_audit_verify(db):
    make_events(5)

    assert audit_chain_walk(chunk_size=2).checked == audit_verify().checked == 5


# --- verify_audit, on the same walk ------------------------------------------------------------


def test_verify_audit__range__says_which_events_and_the_head(db, capsys):
    events = make_events(5)

    call_command("verify_audit", "--from-id", str(events[1].pk), "--to-id", str(events[3].pk))

    out = capsys.readouterr().out
    assert f"Audit events #{events[1].pk}..#{events[3].pk} intact: 3 events verified" in out
    assert f"up to event #{events[3].pk} (hash {events[3].hash})" in out


def test_verify_audit__tampered_in_range__names_the_first_broken_event(db):
    events = make_events(5)
    raw_sql("UPDATE releasecontrol_auditevent SET action = 'x' WHERE id = %s", [events[2].pk])

    with pytest.raises(CommandError, match=rf"BROKEN at event #{events[2].pk}\b"):
        call_command("verify_audit", "--from-id", str(events[1].pk))


@pytest.mark.parametrize(
    "args, message",
    [
        (["--from-id", "0"], "whole numbers from 1"),
        (["--from-id", "9", "--to-id", "3"], r"--to-id \(3\) is below --from-id \(9\)"),
    ],
)
def test_verify_audit__bad_range__command_error(db, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("verify_audit", *args)


# --- Starting one: the service ------------------------------------------------------------------


def test_audit_verification_start__auditor__queued_and_recorded_as_audit_verify(
    auditor, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        verification = audit_verification_start(actor=auditor, from_id=2, to_id=9)

    assert verification.status == VerificationStatus.QUEUED
    assert (verification.from_id, verification.to_id) == (2, 9)
    recorded = AuditEvent.objects.get(action="audit.verify")
    assert recorded.actor == auditor and recorded.outcome == "ok"
    assert recorded.after == {"verification": verification.pk, "from_id": 2, "to_id": 9}
    assert len(callbacks) == 1  # queued only once the transaction commits


@pytest.mark.django_db(transaction=True)  # the denial commits on a connection of its own
def test_audit_verification_start__developer__refused_and_recorded(developer, own_queue):
    with pytest.raises(PermissionDenied):
        audit_verification_start(actor=developer)

    assert not AuditVerification.objects.exists()
    denied = AuditEvent.objects.get(outcome="denied")
    assert (denied.actor, denied.action) == (developer, "audit.verify")


def test_audit_verification_start__range_reversed__validation_error(auditor):
    with pytest.raises(ValidationError) as error:
        audit_verification_start(actor=auditor, from_id=5, to_id=2)

    assert "to_id" in error.value.message_dict
    assert not AuditVerification.objects.exists()


def test_audit_verification_run__twice__runs_once(auditor, django_capture_on_commit_callbacks):
    make_events(3)
    with django_capture_on_commit_callbacks(execute=False):
        verification = audit_verification_start(actor=auditor)

    first = audit_verification_run(verification_id=verification.pk, chunk_size=2)
    finished_at = first.finished_at
    second = audit_verification_run(verification_id=verification.pk, chunk_size=2)

    assert first.status == VerificationStatus.INTACT
    assert second.finished_at == finished_at


# --- A real worker on Redis -----------------------------------------------------------------


def wait_until_finished(verification_id: int) -> AuditVerification:
    deadline = time.monotonic() + WORKER_TIMEOUT
    while True:
        found = AuditVerification.objects.get(pk=verification_id)
        if not found.in_progress:
            return found
        assert time.monotonic() < deadline, (
            f"not finished within {WORKER_TIMEOUT} s: {found.status}"
        )
        time.sleep(0.1)


@pytest.mark.django_db(transaction=True)
def test_verify_chain_task__real_worker_intact_chain__runs_to_completion(
    auditor, own_queue, settings
):
    settings.AUDIT_VERIFY_CHUNK_SIZE = 4
    make_events(10)
    total = AuditEvent.objects.count() + 1  # and the audit.verify event recording the start
    assert TASK_NAME in app.tasks  # registered where the worker looks (releasecontrol.tasks)

    with start_worker(app, perform_ping_check=False, queues=[own_queue], shutdown_timeout=10):
        verification = audit_verification_start(actor=auditor)
        done = wait_until_finished(verification.pk)

    assert done.status == VerificationStatus.INTACT
    assert done.checked == done.total == total
    last = AuditEvent.objects.order_by("-id").first()
    assert (done.last_id, done.last_hash) == (last.pk, last.hash)
    assert done.started_at and done.finished_at and done.progress_at
    assert done.first_broken_id is None


@pytest.mark.django_db(transaction=True)
def test_verify_chain_task__real_worker_tampered_chain__reports_the_first_broken_event(
    auditor, own_queue, settings
):
    settings.AUDIT_VERIFY_CHUNK_SIZE = 4
    events = make_events(10)
    raw_sql(
        "UPDATE releasecontrol_auditevent SET reason = 'rewritten' WHERE id = %s", [events[6].pk]
    )
    before_it = AuditEvent.objects.filter(id__lt=events[6].pk).count()

    with start_worker(app, perform_ping_check=False, queues=[own_queue], shutdown_timeout=10):
        verification = audit_verification_start(actor=auditor)
        done = wait_until_finished(verification.pk)

    assert done.status == VerificationStatus.BROKEN
    assert done.first_broken_id == events[6].pk
    assert "content" in done.problem
    assert done.checked == before_it
    assert done.last_id == events[5].pk


# --- The pages ----------------------------------------------------------------------------------


@pytest.fixture
def running(auditor) -> AuditVerification:
    return AuditVerification.objects.create(
        requested_by=auditor,
        status=VerificationStatus.RUNNING,
        total=1000,
        checked=250,
        last_id=250,
        started_at=timezone.now(),
    )


def test_verify_page__auditor__form_and_latest_verification(client, auditor, running):
    client.force_login(auditor)

    response = client.get("/audit/verify/")

    assert response.status_code == 200
    content = response.content.decode()
    assert 'data-testid="verify-form"' in content
    assert "250 of 1000 events verified (25%)" in content
    assert 'hx-trigger="every 1s"' in content


@pytest.mark.django_db(transaction=True)  # the denial commits on a connection of its own
@pytest.mark.parametrize("who", ["developer", "oncall", "outsider"])
def test_verify_page__not_an_auditor__403_and_the_attempt_recorded(client, request, who):
    user = request.getfixturevalue(who)
    client.force_login(user)

    assert client.get("/audit/verify/").status_code == 403
    assert client.post("/audit/verify/", {}).status_code == 403

    assert not AuditVerification.objects.exists()
    denied = AuditEvent.objects.filter(outcome="denied", actor=user)
    assert [(e.action, e.target_name) for e in denied] == [("audit.verify", "audit chain")]


def test_verify_page__signed_out__redirected_to_sign_in(client, db):
    response = client.get("/audit/verify/")

    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_verify_post__auditor__starts_one_and_redirects_to_it(
    client, auditor, django_capture_on_commit_callbacks
):
    client.force_login(auditor)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post("/audit/verify/", {"from_id": "3", "to_id": ""})

    verification = AuditVerification.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/audit/verify/{verification.pk}/"
    assert (verification.requested_by, verification.from_id, verification.to_id) == (
        auditor, 3, None,
    )  # fmt: skip
    assert AuditEvent.objects.filter(action="audit.verify", actor=auditor).exists()
    assert len(callbacks) == 1


def test_verify_post__htmx__answers_the_polling_partial(
    client, auditor, django_capture_on_commit_callbacks
):
    client.force_login(auditor)

    with django_capture_on_commit_callbacks(execute=False):
        response = client.post("/audit/verify/", {}, **HTMX)

    content = response.content.decode()
    verification = AuditVerification.objects.get()
    assert response.status_code == 200
    assert content.lstrip().startswith('<section id="verification"')
    assert f'hx-get="/audit/verify/{verification.pk}/"' in content
    assert 'hx-trigger="every 1s"' in content


@pytest.mark.parametrize(
    "data, field",
    [
        ({"from_id": "0"}, "from_id"),
        ({"from_id": "x"}, "from_id"),
        ({"from_id": "9", "to_id": "2"}, "to_id"),
    ],
)
def test_verify_post__bad_range__400_naming_the_field(client, auditor, data, field):
    client.force_login(auditor)

    response = client.post("/audit/verify/", data)

    assert response.status_code == 400
    assert f'data-testid="error-{field}"' in response.content.decode()
    assert not AuditVerification.objects.exists()


def test_verify_page__put__405(client, auditor):
    client.force_login(auditor)

    assert client.put("/audit/verify/").status_code == 405
    assert client.post("/audit/verify/1/").status_code == 405


def test_verification_partial__running__polls_every_second(
    client, auditor, running, django_assert_max_num_queries
):
    client.force_login(auditor)

    with django_assert_max_num_queries(4):
        response = client.get(f"/audit/verify/{running.pk}/", **HTMX)

    content = response.content.decode()
    assert content.lstrip().startswith('<section id="verification"')
    assert 'hx-trigger="every 1s"' in content
    assert 'value="250"' in content and 'max="1000"' in content


def test_verification_partial__no_progress_for_minutes__stalled_and_stops_polling(
    client, auditor, running
):
    AuditVerification.objects.filter(pk=running.pk).update(
        progress_at=timezone.now() - dt.timedelta(minutes=5)
    )
    client.force_login(auditor)

    content = client.get(f"/audit/verify/{running.pk}/", **HTMX).content.decode()

    assert 'data-testid="verification-stalled"' in content
    assert "every 1s" not in content


def test_verification_partial__broken__stops_polling_and_links_the_first_broken_event(
    client, auditor, running
):
    AuditVerification.objects.filter(pk=running.pk).update(
        status=VerificationStatus.BROKEN,
        first_broken_id=251,
        problem="hash does not match the event's content",
        finished_at=timezone.now(),
    )
    client.force_login(auditor)

    response = client.get(f"/audit/verify/{running.pk}/", **HTMX)

    content = response.content.decode()
    assert "hx-trigger" not in content
    assert 'href="/audit/events/251/"' in content
    assert (
        "Broken at event" in content and "hash does not match the event&#x27;s content" in content
    )


def test_verification_page__full_page__lists_recent_ones_with_bounded_queries(
    client, auditor, running, django_assert_max_num_queries
):
    for _ in range(5):
        AuditVerification.objects.create(requested_by=auditor, status=VerificationStatus.INTACT)
    client.force_login(auditor)

    with django_assert_max_num_queries(12):
        response = client.get(f"/audit/verify/{running.pk}/")

    assert response.status_code == 200
    assert response.content.decode().count('href="/audit/verify/') >= 6


def test_verification_page__unknown__404(client, auditor):
    client.force_login(auditor)

    assert client.get("/audit/verify/999999/").status_code == 404
