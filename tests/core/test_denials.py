"""A refusal leaves a `denied` audit event that stays committed although the action's
transaction rolls back, and recording it never deadlocks with what that transaction holds."""

import threading

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connection, connections, transaction

from releasecontrol import audit, policy
from releasecontrol.models import AuditEvent, Environment

TIMEOUT = 10


@pytest.fixture
def flip():
    action = policy.register(
        name="test.flip",
        description="Flip a test switch",
        permission="change_flags",
        mutates=True,
        reduces_exposure=None,
        production_execution=True,
        approval=False,
        administrative=False,
    )
    try:
        yield action
    finally:
        policy.unregister(action.name)


def run_with_timeout(work) -> BaseException | None:
    """Run `work` on a thread of its own; fail (and unblock the database) if it hangs."""
    outcome: dict[str, BaseException | None] = {"error": None}

    def target():
        try:
            work()
        except BaseException as error:
            outcome["error"] = error
        finally:
            connections.close_all()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(TIMEOUT)
    if thread.is_alive():
        # A deadlock between Python threads is invisible to PostgreSQL: break it so the
        # suite can go on, then fail.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_cancel_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        thread.join(TIMEOUT)
        pytest.fail(f"the refused action did not finish within {TIMEOUT} s: deadlock")
    return outcome["error"]


def denied_events():
    return AuditEvent.objects.filter(action="test.flip", outcome="denied")


@pytest.mark.django_db(transaction=True)
def test_denial__transaction_rolls_back__denied_event_stays_committed(agent, production, flip):
    with pytest.raises(PermissionDenied), transaction.atomic():
        Environment.objects.filter(pk=production.pk).update(name="Renamed by the agent")
        policy.authorize(agent, flip, production, reduces_exposure=False)
    audit.wait_for_pending_denials()

    assert Environment.objects.get(pk=production.pk).name == "Production"
    assert denied_events().count() == 1
    assert denied_events().get().actor == agent


@pytest.mark.django_db(transaction=True)
def test_denial__transaction_holds_the_chain_lock__no_deadlock_and_event_survives(
    agent, production, flip
):
    def refused_after_an_audited_write():
        with transaction.atomic():
            audit.audit_record(actor=agent, action="test.before", environment=production)
            assert audit.chain_lock_held()
            policy.authorize(agent, flip, production, reduces_exposure=False)

    error = run_with_timeout(refused_after_an_audited_write)
    audit.wait_for_pending_denials()

    assert isinstance(error, PermissionDenied)
    assert denied_events().count() == 1
    assert not AuditEvent.objects.filter(action="test.before").exists()
    assert audit.audit_verify().ok


@pytest.mark.django_db(transaction=True)
def test_denial__transaction_locked_the_environment_row__no_deadlock_and_event_survives(
    agent, production, flip
):
    """A service that locks the environment (to bump its flags version) before it asks."""

    def refused_after_locking_the_environment():
        with transaction.atomic():
            Environment.objects.select_for_update().get(pk=production.pk)
            policy.authorize(agent, flip, production, reduces_exposure=False)

    error = run_with_timeout(refused_after_locking_the_environment)
    audit.wait_for_pending_denials()

    assert isinstance(error, PermissionDenied)
    assert denied_events().count() == 1
    assert audit.audit_verify().ok


@pytest.mark.django_db(transaction=True)
def test_denial__several_in_one_transaction__all_recorded_in_a_valid_chain(
    agent, development, production, flip
):
    def refused_twice():
        with transaction.atomic():
            audit.audit_record(actor=agent, action="test.before")
            for _ in range(2):
                with pytest.raises(PermissionDenied):
                    policy.authorize(agent, flip, production, reduces_exposure=False)
            raise RuntimeError("the action fails afterwards")

    error = run_with_timeout(refused_twice)
    audit.wait_for_pending_denials()

    assert isinstance(error, RuntimeError)
    assert denied_events().count() == 2
    assert audit.audit_verify().ok
