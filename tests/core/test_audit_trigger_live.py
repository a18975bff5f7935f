"""The code under test always meets the live append-only trigger: its bypass is on only for
the flush between transactional tests (tests/conftest.py), never on the connection a test
uses, and transactional tests still run one after another on an emptied database."""

import pytest
from django.db import ProgrammingError, connection, transaction

from releasecontrol.db import AUDIT_MAINTENANCE_GUC
from releasecontrol.models import AuditEvent
from tests.factories import audit_event


def bypass_setting() -> str | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting(%s, true)", [AUDIT_MAINTENANCE_GUC])
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_audit_trigger__update_in_a_transactional_test__refused(system_user):
    event = audit_event(actor=system_user, action="test.kept", reason="original")

    with pytest.raises(ProgrammingError, match="append-only: UPDATE refused"):
        AuditEvent.objects.filter(pk=event.pk).update(reason="rewritten")

    assert bypass_setting() in (None, "")
    event.refresh_from_db()
    assert event.reason == "original"


@pytest.mark.django_db(transaction=True)
def test_audit_trigger__delete_in_a_transactional_test__refused(system_user):
    audit_event(actor=system_user, action="test.kept")

    with pytest.raises(ProgrammingError, match="append-only: DELETE refused"), transaction.atomic():
        AuditEvent.objects.all().delete()

    assert AuditEvent.objects.count() == 1


def test_audit_trigger__update_in_a_test_wrapped_in_a_transaction__refused(system_user):
    event = audit_event(actor=system_user, action="test.kept", reason="original")

    with pytest.raises(ProgrammingError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(reason="rewritten")


@pytest.mark.parametrize("run", [1, 2])
@pytest.mark.django_db(transaction=True)
def test_transactional_tests__one_after_another__each_starts_from_an_empty_trail(system_user, run):
    assert not AuditEvent.objects.exists()  # the previous one's event was flushed

    audit_event(actor=system_user, action=f"test.run{run}")

    assert AuditEvent.objects.count() == 1
    assert bypass_setting() in (None, "")
