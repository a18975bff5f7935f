"""The audit table refuses UPDATE, DELETE and TRUNCATE in the database itself, on PostgreSQL and
on the embedded SQLite default, for every connection but the test suite's flushing one."""

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from django.db import connection

from releasecontrol.models import AuditEvent
from tests.factories import audit_event

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def plain_pg_connection(transactional_db):
    """A connection to the test database as production opens it: without the bypass."""
    settings = connection.settings_dict
    conn = psycopg.connect(
        host=settings["HOST"] or None,
        port=settings["PORT"] or None,
        user=settings["USER"],
        password=settings["PASSWORD"],
        dbname=settings["NAME"],
        autocommit=True,
    )
    yield conn
    conn.close()


@pytest.mark.parametrize(
    "statement, operation",
    [
        ("UPDATE releasecontrol_auditevent SET reason = 'rewritten'", "UPDATE"),
        ("DELETE FROM releasecontrol_auditevent", "DELETE"),
        # CASCADE: a plain TRUNCATE stops earlier, at the rollbacks' reference to the table.
        ("TRUNCATE releasecontrol_auditevent CASCADE", "TRUNCATE"),
    ],
)
def test_audit_trigger__postgresql_connection_without_bypass__refuses(
    plain_pg_connection, system_user, statement, operation
):
    event = audit_event(actor=system_user, action="test.kept", reason="original")

    with pytest.raises(psycopg.errors.InsufficientPrivilege, match=f"append-only: {operation}"):
        plain_pg_connection.execute(statement)

    event.refresh_from_db()
    assert event.reason == "original"
    assert AuditEvent.objects.count() == 1


def test_audit_trigger__postgresql_insert__is_allowed(plain_pg_connection, system_user):
    audit_event(actor=system_user, action="test.first")

    # Appending is what the table is for: only changes to existing rows are refused.
    plain_pg_connection.execute(
        "INSERT INTO releasecontrol_auditevent (created_at, actor_id, actor_kind, actor_name,"
        " action, outcome, target_type, target_id, target_name, reason, request_id,"
        " prev_hash, hash) SELECT now(), actor_id, actor_kind, actor_name, 'test.raw', 'ok',"
        " '', '', '', '', '', hash, repeat('f', 64) FROM releasecontrol_auditevent"
    )

    assert AuditEvent.objects.filter(action="test.raw").exists()


# --- SQLite, the embedded default --------------------------------------------------------


def django_env(database: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DJANGO_SETTINGS_MODULE", "SECRET_KEY", "ALLOW_PLAIN_HTTP")
    }
    env.update(
        DJANGO_SETTINGS_MODULE="releasecontrol.settings",
        DATABASE_URL=f"sqlite:///{database}",
        DEBUG="1",
    )
    return env


def manage(database: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=django_env(database),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def sqlite_database(tmp_path_factory) -> Path:
    """A migrated SQLite database holding one audit event, made as the run command makes it."""
    database = tmp_path_factory.mktemp("sqlite") / "releasecontrol.sqlite3"
    migrate = manage(database, "migrate", "--no-input")
    assert migrate.returncode == 0, migrate.stderr
    record = manage(
        database,
        "shell",
        "-c",
        "from releasecontrol.audit import audit_record; from releasecontrol.models import User;"
        " audit_record(actor=User.system(), action='test.kept', reason='original')",
    )
    assert record.returncode == 0, record.stderr
    return database


def sqlite_rows(database: Path) -> list[tuple]:
    with sqlite3.connect(database) as conn:
        return conn.execute("SELECT action, reason FROM releasecontrol_auditevent").fetchall()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE releasecontrol_auditevent SET reason = 'rewritten'",
        "DELETE FROM releasecontrol_auditevent",
    ],
)
def test_audit_trigger__sqlite3_module__refuses(sqlite_database, statement):
    conn = sqlite3.connect(sqlite_database)
    try:
        # Outside the application the trigger's check is missing, so it fails closed.
        with pytest.raises(sqlite3.Error, match="releasecontrol_audit_maintenance"):
            conn.execute(statement)
    finally:
        conn.close()

    assert sqlite_rows(sqlite_database) == [("test.kept", "original")]


@pytest.mark.parametrize(
    "code, operation",
    [
        ("AuditEvent.objects.update(reason='rewritten')", "UPDATE"),
        ("AuditEvent.objects.all().delete()", "DELETE"),
    ],
)
def test_audit_trigger__sqlite_through_django__refuses(sqlite_database, code, operation):
    script = (
        "from django.db import IntegrityError\n"
        "from releasecontrol.models import AuditEvent\n"
        "try:\n"
        f"    {code}\n"
        "except IntegrityError as error:\n"
        "    print('REFUSED', error)\n"
    )

    result = manage(sqlite_database, "shell", "-c", script)

    assert result.returncode == 0, result.stderr
    assert f"REFUSED audit events are append-only: {operation} refused" in result.stdout
    assert sqlite_rows(sqlite_database) == [("test.kept", "original")]
