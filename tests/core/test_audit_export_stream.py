"""Streaming exports of a filtered set: COPY on PostgreSQL and the iterator path give the same
rows, the filter holds exactly the explorer's events, and the offline script in docs/audit.md
verifies a real export with nothing but the standard library and catches a tampered line."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from releasecontrol.audit import EXPORT_FIELDS, Target, format_time
from releasecontrol.audit.export import audit_export, audit_export_open
from releasecontrol.audit.selectors import AuditFilter, audit_events
from releasecontrol.context import RequestContext, reset_request_context, set_request_context
from releasecontrol.models import AuditEvent
from tests.factories import audit_event

ROOT = Path(__file__).resolve().parents[2]
NULLABLE = ("environment", "client_ip")


def docs_script(tmp_path: Path) -> Path:
    """The verification script exactly as docs/audit.md prints it."""
    text = (ROOT / "docs" / "audit.md").read_text()
    match = re.search(
        r"<!-- verify_export\.py: begin -->\n```python\n(.*?)```\n<!-- verify_export\.py: end -->",
        text,
        re.S,
    )
    assert match, "docs/audit.md lost its verify_export.py block"
    path = tmp_path / "verify_export.py"
    path.write_text(match.group(1))
    return path


def run_script(script: Path, *args: str) -> subprocess.CompletedProcess:
    # -I: isolated mode, so nothing of this project (or its virtualenv's path) is importable.
    return subprocess.run(
        [sys.executable, "-I", str(script), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def parse_csv(data: bytes) -> list[dict[str, Any]]:
    rows = []
    reader = csv.DictReader(io.StringIO(data.decode(), newline=""))
    assert tuple(reader.fieldnames or ()) == EXPORT_FIELDS
    for row in reader:
        value: dict[str, Any] = dict(row)
        value["id"], value["actor_id"] = int(row["id"]), int(row["actor_id"])
        for name in NULLABLE:
            value[name] = row[name] or None
        for name in ("before", "after"):
            value[name] = json.loads(row[name]) if row[name] else None
        rows.append(value)
    return rows


def parse_jsonl(data: bytes) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in data.decode().splitlines()]
    for row in rows:
        assert tuple(row) == EXPORT_FIELDS
    return rows


def exported(fmt: str, method: str, audit_filter: AuditFilter | None = None, **kw) -> bytes:
    out = io.BytesIO()
    export = audit_export(audit_filter, fmt=fmt, method=method, **kw)
    count = export.write_to(out)
    assert count == export.rows
    return out.getvalue()


def expected_rows(events) -> list[dict[str, Any]]:
    """What the database holds, read through the ORM, as an export should carry it."""
    rows = []
    for event in events:
        rows.append(
            {
                "id": event.pk,
                "created_at": format_time(event.created_at),
                "actor_id": event.actor_id,
                "actor_kind": event.actor_kind,
                "actor_name": event.actor_name,
                "action": event.action,
                "outcome": event.outcome,
                "environment": event.environment_id,
                "target_type": event.target_type,
                "target_id": event.target_id,
                "target_name": event.target_name,
                "before": event.before,
                "after": event.after,
                "reason": event.reason,
                "request_id": event.request_id,
                "client_ip": event.client_ip,
                "prev_hash": event.prev_hash,
                "hash": event.hash,
            }
        )
    return rows


@pytest.fixture
def varied_events(system_user, agent, release_manager, production, staging):
    """Events with everything an export must carry intact: quotes, commas, newlines, non-ASCII,
    nested JSON (keys PostgreSQL reorders), null and JSON columns, IPv4 and IPv6 addresses."""
    token = set_request_context(RequestContext("req-ä1", "2001:db8::7"))
    try:
        audit_event(
            actor=release_manager,
            action="flag.state.set",
            environment=production,
            target=Target("flag", "7", "new-checkout"),
            before={"mode": "off", "percentage": 0, "allowlist": [], "version": 1},
            after={
                "mode": "percentage",
                "percentage": 5,
                "allowlist": ["user-1", "ünï"],
                "version": 2,
                "zz": {"bb": [1.5, None, True], "a": 'x\\y\n"q"'},
            },
            reason='ship to 5 %, "carefully"\nsecond line — Grüße',
        )
    finally:
        reset_request_context(token)
    token = set_request_context(RequestContext("req-2", "203.0.113.9"))
    try:
        audit_event(
            actor=agent,
            action="flag.state.set",
            environment=production,
            target=Target("flag", "7", "new-checkout"),
            after={"refused": "agents never execute production actions", "requested": None},
            outcome="denied",
        )
    finally:
        reset_request_context(token)
    audit_event(actor=system_user, action="test.no_environment", before=None, after=None)
    audit_event(actor=agent, action="flag.create", environment=staging, after={"key": "k"})
    return list(AuditEvent.objects.order_by("id"))


# --- Two paths, one result ---------------------------------------------------------------


@pytest.mark.parametrize("fmt, parse", [("csv", parse_csv), ("jsonl", parse_jsonl)])
def test_audit_export__copy_and_iterator__identical_parsed_rows(varied_events, fmt, parse):
    from_copy = parse(exported(fmt, "copy"))
    from_iterator = parse(exported(fmt, "iterator"))

    assert from_copy == from_iterator
    assert from_copy == expected_rows(varied_events)


def test_audit_export__csv_and_jsonl__carry_the_same_values(varied_events):
    assert parse_csv(exported("csv", "copy")) == parse_jsonl(exported("jsonl", "copy"))


def test_audit_export__copy_path__created_at_exactly_as_hashed(varied_events):
    rows = parse_csv(exported("csv", "copy"))

    assert [row["created_at"] for row in rows] == [
        format_time(event.created_at) for event in varied_events
    ]
    iso_utc = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00"
    assert all(re.fullmatch(iso_utc, row["created_at"]) for row in rows)


@pytest.mark.parametrize(
    "params",
    [
        {"environment": "production", "outcome": "denied", "actor_kind": "agent"},
        {"action": "flag."},
        {"actor": "rita"},
        {"target_type": "flag", "target_id": "7"},
        {"environment": "staging"},
        {"outcome": "ok", "actor_kind": "system"},
    ],
)
@pytest.mark.parametrize("method", ["copy", "iterator"])
def test_audit_export__filter__exactly_the_explorers_events_oldest_first(
    varied_events, params, method
):
    audit_filter = AuditFilter.from_params(params)
    expected = list(reversed(audit_events(audit_filter)))
    assert expected, "each filter here matches something"

    rows = parse_csv(exported("csv", method, audit_filter))

    assert rows == expected_rows(expected)


def test_audit_export__time_window__holds_only_events_inside_it(varied_events):
    second, third = varied_events[-3], varied_events[-2]
    audit_filter = AuditFilter(since=second.created_at, until=third.created_at)

    rows = parse_jsonl(exported("jsonl", "copy", audit_filter))

    assert [row["id"] for row in rows] == [second.pk, third.pk]


def test_audit_export__id_range__bounds_both_ends(varied_events):
    ids = [event.pk for event in varied_events]

    rows = parse_csv(exported("csv", "copy", from_id=ids[1], to_id=ids[2]))

    assert [row["id"] for row in rows] == ids[1:3]


def test_audit_export__no_events__csv_is_only_the_header(db):
    AuditEvent.objects.all().delete()  # the test connection's maintenance bypass

    for method in ("copy", "iterator"):
        assert exported("csv", method).decode() == ",".join(EXPORT_FIELDS) + "\n"
        assert exported("jsonl", method) == b""


def test_audit_export__consumer_leaves_after_the_first_chunk__connection_still_usable(
    system_user,
):
    # Enough rows for more than one chunk, then a client that hangs up.
    for n in range(40):
        audit_event(actor=system_user, action="test.bulk", reason="x" * 8000 + str(n))
    stream = iter(audit_export(fmt="csv", method="copy"))

    first = next(stream)
    stream.close()  # what a StreamingHttpResponse does when the client goes away

    assert first.startswith(b"id,created_at,")
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM releasecontrol_auditevent")
        assert cursor.fetchone()[0] == 40


# --- Who exports: audit_export_open --------------------------------------------------------


def test_audit_export_open__auditor__records_the_export_and_covers_up_to_the_head(
    varied_events, auditor
):
    before_export = AuditEvent.objects.order_by("-id").first()

    export = audit_export_open(
        actor=auditor, audit_filter=AuditFilter(environment="production"), fmt="jsonl"
    )
    audit_event(action="test.after_the_export", environment=varied_events[0].environment)
    rows = parse_jsonl(b"".join(export))

    recorded = AuditEvent.objects.get(action="audit.export")
    assert recorded.actor == auditor and recorded.outcome == "ok"
    assert recorded.environment_id == "production"
    assert recorded.after == {
        "filter": {"environment": "production"},
        "format": "jsonl",
        "up_to_id": before_export.pk,
    }
    # Exactly the production events up to the head when the export began.
    expected = AuditEvent.objects.filter(environment="production", id__lte=before_export.pk)
    assert [row["id"] for row in rows] == sorted(expected.values_list("id", flat=True))
    assert len(rows) >= 3


@pytest.mark.django_db(transaction=True)  # the denial commits on a connection of its own
def test_audit_export_open__developer__refused_and_recorded_as_denied(developer):
    with pytest.raises(PermissionDenied):
        audit_export_open(actor=developer, audit_filter=AuditFilter(), fmt="csv")

    denied = AuditEvent.objects.get(action="audit.export")
    assert (denied.actor, denied.outcome) == (developer, "denied")


# --- The command ---------------------------------------------------------------------------


def command(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("export_audit", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_export_audit__filters__the_same_set_as_the_selector(varied_events):
    out, err = command(
        "--format", "csv", "--environment", "production", "--outcome", "denied",
        "--actor-kind", "agent",
    )  # fmt: skip

    rows = parse_csv(out.encode())
    expected = list(
        reversed(
            audit_events(
                AuditFilter(environment="production", outcome="denied", actor_kind="agent")
            )
        )
    )
    assert rows == expected_rows(expected) and len(rows) == 1
    assert "1 events exported" in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--since", "yesterday"], r"--since: 'yesterday' is not a date"),
        (["--outcome", "maybe"], r"--outcome: use one of ok, denied"),
        (["--actor-kind", "robot"], r"--actor-kind: use one of human, agent, system"),
        (["--environment", "prod"], r"--environment: no environment 'prod'; use one of"),
    ],
)
def test_export_audit__bad_filter__command_error_says_what_to_fix(db, args, message):
    with pytest.raises(CommandError, match=message):
        command(*args)


def test_export_audit__as_auditor__recorded_as_audit_export(varied_events, auditor):
    out, _ = command("--format", "jsonl", "--action", "flag.", "--as", "audrey")

    assert len(parse_jsonl(out.encode())) == 3
    recorded = AuditEvent.objects.get(action="audit.export")
    assert recorded.actor == auditor
    assert recorded.after["filter"] == {"action": "flag."}


@pytest.mark.django_db(transaction=True)  # the denial commits on a connection of its own
def test_export_audit__as_agent__refused_and_recorded(agent):
    with pytest.raises(CommandError, match="Refused"):
        command("--as", "ci-bot")

    assert AuditEvent.objects.filter(action="audit.export", outcome="denied", actor=agent).exists()


def test_export_audit__as_unknown_account__command_error(db):
    with pytest.raises(CommandError, match="No account 'nobody'"):
        command("--as", "nobody")


# --- Offline verification with the script from docs/audit.md -----------------------------


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_docs_verify_script__full_export__verifies_the_chain(varied_events, tmp_path, fmt):
    path = tmp_path / f"audit.{fmt}"
    path.write_bytes(exported(fmt, "copy"))

    result = run_script(docs_script(tmp_path), str(path))

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"OK: {len(varied_events)} events, chain intact" in result.stdout
    assert varied_events[-1].hash in result.stdout


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_docs_verify_script__tampered_line__names_that_event(varied_events, tmp_path, fmt):
    data = exported(fmt, "copy").decode()
    target = next(e for e in varied_events if e.outcome == "denied")  # claim it was allowed
    tampered = (
        data.replace(",denied,", ",ok,")
        if fmt == "csv"
        else data.replace('"outcome" : "denied"', '"outcome" : "ok"')
    )
    assert tampered != data
    path = tmp_path / f"audit.{fmt}"
    path.write_text(tampered)

    result = run_script(docs_script(tmp_path), str(path))

    assert result.returncode == 1
    assert f"BROKEN at event #{target.pk}: its hash does not match its content" in result.stdout


def test_docs_verify_script__line_removed__names_the_event_after_the_gap(varied_events, tmp_path):
    rows = exported("jsonl", "copy").decode().splitlines(keepends=True)
    path = tmp_path / "audit.jsonl"
    path.write_text("".join(rows[:1] + rows[2:]))

    result = run_script(docs_script(tmp_path), str(path))

    assert result.returncode == 1
    assert f"BROKEN at event #{varied_events[2].pk}: prev_hash" in result.stdout


def test_docs_verify_script__filtered_export__verifies_with_partial_only(varied_events, tmp_path):
    path = tmp_path / "production.csv"
    path.write_bytes(exported("csv", "copy", AuditFilter(environment="production", action="flag.")))
    script = docs_script(tmp_path)

    partial = run_script(script, str(path), "--partial")
    full = run_script(script, str(path))

    first, second = (e for e in varied_events if e.action == "flag.state.set")
    assert second.pk == first.pk + 1  # neighbours in the chain: their link is checked
    assert partial.returncode == 0, partial.stdout + partial.stderr
    assert "OK: 2 events, every hash matches; 1 links verified" in partial.stdout
    # Without --partial the file must be the whole chain, from 64 zeros: it is not.
    assert full.returncode == 1
    assert f"BROKEN at event #{first.pk}: prev_hash is not the hash of the first" in full.stdout


def test_docs_verify_script__any_json_text_of_the_same_value__verifies(varied_events, tmp_path):
    # The iterator writes canonical JSON, COPY writes PostgreSQL's: both verify.
    script = docs_script(tmp_path)
    for method in ("copy", "iterator"):
        path = tmp_path / f"{method}.csv"
        path.write_bytes(exported("csv", method))
        result = run_script(script, str(path))
        assert result.returncode == 0, f"{method}: {result.stdout}{result.stderr}"


# --- Real processes: the command's binary stdout on PostgreSQL, and SQLite ------------------


def database_url() -> str:
    s = connection.settings_dict
    return f"postgres://{s['USER']}:{s['PASSWORD']}@{s['HOST']}:{s['PORT']}/{s['NAME']}"


def manage_env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(DATABASE_URL=url, DEBUG="1", LOG_LEVEL="WARNING")
    return env


@pytest.mark.django_db(transaction=True)
def test_export_audit__as_a_process_on_postgresql__streams_a_file_that_verifies(tmp_path):
    from releasecontrol.models import User

    for n in range(25):
        audit_event(actor=User.system(), action="test.process", reason=f"n{n} ✓")
    path = tmp_path / "audit.csv"

    with path.open("wb") as out:
        result = subprocess.run(
            [sys.executable, "manage.py", "export_audit", "--format", "csv"],
            cwd=ROOT,
            env=manage_env(database_url()),
            stdout=out,
            stderr=subprocess.PIPE,
            text=False,
            timeout=120,
            check=False,
        )

    assert result.returncode == 0, result.stderr.decode()
    assert b"25 events exported." in result.stderr
    verified = run_script(docs_script(tmp_path), str(path))
    assert verified.returncode == 0, verified.stdout
    assert "OK: 25 events, chain intact" in verified.stdout


def test_export_audit__on_sqlite__iterator_path_verifies_offline(tmp_path):
    url = f"sqlite:///{tmp_path / 'rc.sqlite3'}"

    def manage(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=manage_env(url),
            capture_output=True,
            timeout=120,
            check=False,
        )

    assert manage("migrate", "--no-input").returncode == 0
    made = manage(
        "shell",
        "-c",
        "from releasecontrol.audit import audit_record; from releasecontrol.models import User\n"
        "for n in range(5): audit_record(actor=User.system(), action='test.sqlite',"
        " before={'n': n, 'ü': [1.5]}, reason='a,\"b\"\\nc')",
    )
    assert made.returncode == 0, made.stderr.decode()

    for fmt in ("csv", "jsonl"):
        result = manage("export_audit", "--format", fmt, "--action", "test.")
        assert result.returncode == 0, result.stderr.decode()
        path = tmp_path / f"audit.{fmt}"
        path.write_bytes(result.stdout)
        verified = run_script(docs_script(tmp_path), str(path), "--partial")
        assert verified.returncode == 0, verified.stdout
        assert "OK: 5 events" in verified.stdout
