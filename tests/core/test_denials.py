"""A refusal leaves a `denied` audit event that stays committed although the action's
transaction rolls back: written on the same connection, in a transaction of its own, once the
refused transaction has ended. So it never waits for a lock that transaction holds (no
deadlock), starts no thread, and fails the request loudly when it cannot be written."""

import logging
import threading

import psycopg
import pytest
from django.core.exceptions import PermissionDenied
from django.db import connection, connections, transaction

from releasecontrol import audit, policy
from releasecontrol.audit import DenialUnwritable
from releasecontrol.context import RequestContext, reset_request_context, set_request_context
from releasecontrol.models import AuditEvent, Environment, User

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


def committed_denials() -> list[tuple[str, str]]:
    """Read through a connection of its own: only what is committed."""
    settings = connection.settings_dict
    with psycopg.connect(
        host=settings["HOST"] or None,
        port=settings["PORT"] or None,
        user=settings["USER"],
        password=settings["PASSWORD"],
        dbname=settings["NAME"],
    ) as conn:
        return conn.execute(
            "SELECT actor_name, reason FROM releasecontrol_auditevent"
            " WHERE action = 'test.flip' AND outcome = 'denied' ORDER BY id"
        ).fetchall()


@pytest.mark.django_db(transaction=True)
def test_denial__transaction_rolls_back__committed_seen_from_another_connection(
    agent, production, flip
):
    threads_before = threading.active_count()

    with pytest.raises(PermissionDenied), transaction.atomic():
        Environment.objects.filter(pk=production.pk).update(name="Renamed by the agent")
        policy.authorize(agent, flip, production, reduces_exposure=False, reason="try")

    assert committed_denials() == [("ci-bot", "try")]
    assert Environment.objects.get(pk=production.pk).name == "Production"
    assert denied_events().get().actor == agent
    assert threading.active_count() == threads_before
    assert not connection.pending_denials


@pytest.mark.django_db(transaction=True)
def test_denial__outside_any_transaction__written_at_once(agent, production, flip):
    with pytest.raises(PermissionDenied):
        policy.authorize(agent, flip, production, reduces_exposure=False, reason="direct")

    assert committed_denials() == [("ci-bot", "direct")]


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

    assert isinstance(error, PermissionDenied)
    assert denied_events().count() == 1
    assert not AuditEvent.objects.filter(action="test.before").exists()
    assert audit.audit_verify().ok


@pytest.mark.django_db(transaction=True)
def test_denial__transaction_locked_the_environment_for_update__no_deadlock(
    agent, production, flip
):
    """A full FOR UPDATE lock on the row the event refers to, taken before asking."""

    def refused_after_locking_the_environment():
        with transaction.atomic():
            Environment.objects.select_for_update().get(pk=production.pk)
            User.objects.select_for_update().get(pk=agent.pk)
            policy.authorize(agent, flip, production, reduces_exposure=False)

    error = run_with_timeout(refused_after_locking_the_environment)

    assert isinstance(error, PermissionDenied)
    assert denied_events().count() == 1
    assert audit.audit_verify().ok


@pytest.mark.django_db(transaction=True)
def test_denial__several_in_one_transaction__all_recorded_in_a_valid_chain(agent, production, flip):
    threads_before = threading.active_count()

    def refused_twice():
        with transaction.atomic():
            audit.audit_record(actor=agent, action="test.before")
            for n in range(2):
                with pytest.raises(PermissionDenied):
                    policy.authorize(agent, flip, production, reduces_exposure=False, reason=f"{n}")
            raise RuntimeError("the action fails afterwards")

    error = run_with_timeout(refused_twice)

    assert isinstance(error, RuntimeError)
    assert committed_denials() == [("ci-bot", "0"), ("ci-bot", "1")]
    assert audit.audit_verify().ok
    assert threading.active_count() == threads_before


@pytest.mark.django_db(transaction=True)
def test_denial__caller_catches_it_and_commits__recorded_once_after_the_commit(
    agent, production, flip
):
    with transaction.atomic():
        with pytest.raises(PermissionDenied), transaction.atomic():
            policy.authorize(agent, flip, production, reduces_exposure=False)
        assert not denied_events().exists()  # the caller's transaction is still open
        audit.audit_record(actor=agent, action="test.after")

    assert denied_events().count() == 1
    assert AuditEvent.objects.filter(action="test.after").exists()
    assert audit.audit_verify().ok


@pytest.mark.django_db(transaction=True)
def test_denial__request_context__the_refused_requests_id_and_address(agent, production, flip):
    token = set_request_context(RequestContext("req-denied-1", "2001:DB8::1"))
    try:
        with pytest.raises(PermissionDenied), transaction.atomic():
            policy.authorize(agent, flip, production, reduces_exposure=False)
    finally:
        reset_request_context(token)

    event = denied_events().get()
    assert (event.request_id, event.client_ip) == ("req-denied-1", "2001:db8::1")
    assert audit.audit_verify().ok


@pytest.mark.django_db(transaction=True)
def test_denial__cannot_be_written__the_request_fails_loudly(agent, production, flip, caplog):
    """The edge refuses NUL before any service runs; if one got past it, the refusal must not
    pass silently without its event."""
    with (
        caplog.at_level(logging.ERROR, logger="releasecontrol.audit"),
        pytest.raises(DenialUnwritable, match="NUL"),
        transaction.atomic(),
    ):
        policy.authorize(agent, flip, production, reduces_exposure=False, reason="a\x00b")

    assert "audit.denial_unwritable" in caplog.text
    assert not denied_events().exists()
    assert not connection.pending_denials


@pytest.mark.django_db(transaction=True)
def test_denial__cannot_be_written_outside_a_transaction__raises(agent, production, flip):
    with pytest.raises(DenialUnwritable):
        policy.authorize(agent, flip, production, reduces_exposure=False, reason="\ud800")


@pytest.mark.django_db(transaction=True)
def test_denial__actor_created_in_the_rolled_back_transaction__raises(production, flip):
    from tests.factories import AgentFactory

    with pytest.raises(DenialUnwritable), transaction.atomic():
        newcomer = AgentFactory(username="newcomer")
        policy.authorize(newcomer, flip, production, reduces_exposure=False)


def test_denial__inside_a_test_wrapped_in_one_transaction__visible_when_the_block_ends(
    agent, production, flip
):
    """pytest-django's `db` tests: the event is written when the service's own block ends,
    inside the test's transaction (which rolls it back afterwards, like everything else)."""
    with pytest.raises(PermissionDenied), transaction.atomic():
        policy.authorize(agent, flip, production, reduces_exposure=False)
        assert not denied_events().exists()

    assert denied_events().count() == 1
