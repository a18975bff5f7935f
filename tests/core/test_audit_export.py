"""`export_audit --format csv|jsonl`: every event with its hash fields, re-verifiable by an
auditor with nothing but hashlib and json."""

import csv
import hashlib
import io
import json

import pytest
from django.core.management import call_command

from releasecontrol.audit import Target
from releasecontrol.models import AuditEvent
from tests.factories import audit_event


@pytest.fixture
def events(system_user, release_manager, production):
    # release_manager's creation already audited two events (account, role grants).
    audit_event(
        actor=release_manager,
        action="flag.state.set",
        environment=production,
        target=Target("flag", "1", "new-checkout"),
        before={"mode": "off"},
        after={"mode": "full", "note": 'naïve, "quoted", comma'},
        reason="launch — day 1",
    )
    audit_event(actor=system_user, action="test.last")
    return list(AuditEvent.objects.order_by("id"))


def export(fmt: str) -> str:
    """Export as the shell operator; the export is recorded, after the events it covers."""
    before = AuditEvent.objects.count()
    out, err = io.StringIO(), io.StringIO()
    call_command("export_audit", "--format", fmt, stdout=out, stderr=err)
    assert f"{before} events exported" in err.getvalue()
    recorded = AuditEvent.objects.order_by("-id").first()
    assert (recorded.action, recorded.actor_kind) == ("audit.export", "system")
    return out.getvalue()


def test_export_audit__csv__header_with_hash_fields_and_one_row_per_event(events):
    rows = list(csv.reader(io.StringIO(export("csv"))))
    assert [e.pk for e in events] == [int(row[0]) for row in rows[1:]]  # not its own record

    header, body = rows[0], rows[1:]
    assert header[0] == "id"
    assert header[-2:] == ["prev_hash", "hash"]
    assert {"created_at", "actor_name", "action", "outcome", "environment", "before", "after"} <= (
        set(header)
    )
    assert [int(row[0]) for row in body] == [event.pk for event in events]
    by_name = [dict(zip(header, row, strict=True)) for row in body]
    assert [row["hash"] for row in by_name] == [event.hash for event in events]
    launch = by_name[-2]
    assert launch["environment"] == "production"
    assert json.loads(launch["after"]) == {"mode": "full", "note": 'naïve, "quoted", comma'}
    assert launch["reason"] == "launch — day 1"


def test_export_audit__jsonl__one_object_per_line_and_the_chain_reverifies(events):
    lines = export("jsonl").splitlines()

    assert len(lines) == len(events)
    prev = "0" * 64
    for line in lines:
        row = json.loads(line)
        event = {k: v for k, v in row.items() if k not in ("id", "prev_hash", "hash")}
        canonical = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert row["prev_hash"] == prev
        assert hashlib.sha256(prev.encode() + canonical.encode()).hexdigest() == row["hash"]
        prev = row["hash"]
    assert prev == events[-1].hash


def test_export_audit__empty_trail__only_the_export_itself_recorded(db):
    AuditEvent.objects.all().delete()  # the test connection's maintenance bypass

    lines = export("csv").splitlines()

    assert len(lines) == 1 and lines[0].startswith("id,") and lines[0].endswith(",prev_hash,hash")
    assert AuditEvent.objects.filter(action="audit.export", actor_kind="system").count() == 1
