import pytest
from django.core.exceptions import PermissionDenied
from django.db import transaction

from releasecontrol import audit
from releasecontrol.models import AuditEvent
from releasecontrol.policy import authorize, register, unregister


@pytest.mark.django_db(transaction=True)
def test_denial_survives_rollback_with_lock_held(agent, production):
    act = register(
        name="test.flip",
        description="Flip a test switch",
        permission="change_flags",
        mutates=True,
        reduces_exposure=False,
        production_execution=True,
        approval=False,
        administrative=False,
    )
    try:
        with pytest.raises(PermissionDenied), transaction.atomic():
            audit.audit_record(actor=agent, action="test.before")
            authorize(agent, act, production)
        audit.wait_for_pending_denials()
        assert AuditEvent.objects.filter(action="test.flip", outcome="denied").count() == 1
        assert not AuditEvent.objects.filter(action="test.before").exists()
        assert audit.audit_verify().ok
    finally:
        unregister("test.flip")


def test_dashboard(client, developer):
    client.force_login(developer)
    r = client.get("/")
    assert r.status_code == 200
    assert b"Production" in r.content


def test_healthz(client, db):
    r = client.get("/healthz")
    assert r.status_code == 200, r.content
    assert r.json()["database"] == "ok"
