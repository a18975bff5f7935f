"""The audit chain, exactly as DESIGN.md says: hash = sha256(prev_hash hex + canonical JSON of
the event), the first prev_hash 64 zeros; the verifier names the first broken event."""

import datetime as dt
import hashlib
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from releasecontrol.audit import Target, audit_record, audit_verify
from releasecontrol.context import RequestContext, reset_request_context, set_request_context
from releasecontrol.models import AuditEvent
from tests.audit_bypass import tamper
from tests.factories import audit_event

# The event's fields as DESIGN.md and issue 2 list them (the hash fields aside).
EVENT_FIELDS = (
    "created_at",
    "actor_id",
    "actor_kind",
    "actor_name",
    "action",
    "outcome",
    "environment",
    "target_type",
    "target_id",
    "target_name",
    "before",
    "after",
    "reason",
    "request_id",
    "client_ip",
)


def expected_hash(prev_hash: str, row: dict) -> str:
    """Recomputed with nothing but hashlib and json, from the row as stored."""
    event = {field: row[field] for field in EVENT_FIELDS}
    event["created_at"] = row["created_at"].astimezone(dt.UTC).isoformat(timespec="microseconds")
    canonical = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(prev_hash.encode() + canonical.encode("utf-8")).hexdigest()


def stored(event: AuditEvent) -> dict:
    return AuditEvent.objects.filter(pk=event.pk).values(*EVENT_FIELDS, "prev_hash", "hash").get()


@pytest.fixture
def request_context():
    token = set_request_context(RequestContext("req-7f3a", "203.0.113.9"))
    yield
    reset_request_context(token)


def test_audit_record__first_event__chains_from_64_zeros_with_the_design_hash(
    system_user, production, request_context
):
    assert not AuditEvent.objects.exists()

    event = audit_event(
        actor=system_user,
        action="flag.state.set",
        environment=production,
        target=Target("flag", "42", "new-checkout"),
        before={"mode": "off", "percentage": 0, "allowlist": []},
        after={"mode": "percentage", "percentage": 5, "at": dt.datetime(2026, 1, 2, 3, 4, 5)},
        reason="Grüße: ship to 5 % — carefully",
    )

    row = stored(event)
    assert row["prev_hash"] == "0" * 64
    assert row["hash"] == expected_hash("0" * 64, row)
    assert row["environment"] == "production"
    assert (row["request_id"], row["client_ip"]) == ("req-7f3a", "203.0.113.9")
    assert row["after"]["percentage"] == 5


def test_audit_record__next_event__links_to_the_previous_hash(system_user, development):
    first = audit_event(actor=system_user, action="test.one")
    second = audit_event(actor=system_user, action="test.two", environment=development)

    row = stored(second)
    assert row["prev_hash"] == first.hash
    assert row["hash"] == expected_hash(first.hash, row)


def test_audit_record__without_an_actor__refuses():
    with pytest.raises(ValueError, match="actor"):
        audit_record(actor=None, action="test.nobody")


@pytest.fixture
def three_events(system_user):
    return [audit_event(actor=system_user, action=f"test.{n}", reason=f"n{n}") for n in range(3)]


def raw_sql(sql: str, params: list) -> None:
    # Exactly what an attacker with the table owner's rights could do.
    tamper(sql, params)


def test_audit_verify__untouched_chain__is_intact(three_events, capsys):
    report = audit_verify()
    call_command("verify_audit")

    assert report.ok and report.checked == 3
    assert "intact: 3 events" in capsys.readouterr().out


def test_audit_verify__content_edited__names_that_event(three_events):
    _, second, _ = three_events
    raw_sql("UPDATE releasecontrol_auditevent SET reason = %s WHERE id = %s", ["edited", second.pk])

    report = audit_verify()

    assert not report.ok
    assert report.first_broken_id == second.pk
    assert report.checked == 1
    assert "content" in report.problem
    with pytest.raises(CommandError, match=rf"BROKEN at event #{second.pk}\b"):
        call_command("verify_audit")


def test_audit_verify__edit_with_its_own_hash_recomputed__names_the_next_event(three_events):
    _, second, third = three_events
    row = stored(second)
    row["reason"] = "edited, and the hash fixed up"
    forged = expected_hash(row["prev_hash"], row)
    raw_sql(
        "UPDATE releasecontrol_auditevent SET reason = %s, hash = %s WHERE id = %s",
        [row["reason"], forged, second.pk],
    )

    report = audit_verify()

    assert report.first_broken_id == third.pk
    assert "prev_hash" in report.problem


def test_audit_verify__event_deleted__names_the_event_after_the_gap(three_events):
    _, second, third = three_events
    raw_sql("DELETE FROM releasecontrol_auditevent WHERE id = %s", [second.pk])

    report = audit_verify()

    assert report.first_broken_id == third.pk
    with pytest.raises(CommandError, match=rf"#{third.pk}\b"):
        call_command("verify_audit")


def test_audit_record__clock_goes_back__time_never_earlier_than_previous_event(
    db, system_user, monkeypatch
):
    import datetime as dt

    from releasecontrol import audit

    first = audit.audit_record(actor=system_user, action="test.first")
    earlier = first.created_at - dt.timedelta(minutes=5)
    monkeypatch.setattr(audit.timezone, "now", lambda: earlier)  # another node's slow clock

    second = audit.audit_record(actor=system_user, action="test.second")

    assert second.created_at == first.created_at
    assert audit.audit_verify().ok


def test_audit_record__huge_whole_float__hash_verifies_as_stored(db, system_user):
    from releasecontrol import audit
    from releasecontrol.models import AuditEvent

    event = audit.audit_record(actor=system_user, action="test.float", after={"n": 1e16, "x": 0.5})

    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.after == {"n": 10**16, "x": 0.5}
    assert audit.audit_verify().ok
