"""Concurrent writers on PostgreSQL: appends are serialized by the chain lock, so no event is
lost and the chain stays one valid line."""

import threading

import pytest
from django.db import connections, transaction

from releasecontrol.audit import audit_record, audit_verify
from releasecontrol.models import AuditEvent, User

WRITERS = 8
EVENTS_EACH = 25


@pytest.mark.django_db(transaction=True)
def test_audit_record__8_concurrent_writers__no_event_lost_and_chain_valid(production):
    system = User.system()
    start = threading.Barrier(WRITERS)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            start.wait(timeout=10)
            for i in range(EVENTS_EACH):
                with transaction.atomic():
                    audit_record(
                        actor=system,
                        action="test.concurrent",
                        environment=production,
                        after={"writer": n, "i": i},
                    )
        except BaseException as error:
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    written = AuditEvent.objects.filter(action="test.concurrent")
    assert written.count() == WRITERS * EVENTS_EACH
    assert {(e["after"]["writer"], e["after"]["i"]) for e in written.values("after")} == {
        (n, i) for n in range(WRITERS) for i in range(EVENTS_EACH)
    }
    report = audit_verify()
    assert report.ok, report
    assert report.checked == AuditEvent.objects.count()
    # One line, no fork: every prev_hash is used once.
    prev_hashes = list(AuditEvent.objects.values_list("prev_hash", flat=True))
    assert len(set(prev_hashes)) == len(prev_hashes)
