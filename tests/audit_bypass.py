"""The audit trigger's bypass, for the test suite alone and only around what needs it: the
flush between transactional tests (tests/conftest.py) and tests that play an attacker with
the table owner's rights. The code under test never runs with it on."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from django.db import connection as default_connection

from releasecontrol.db import AUDIT_MAINTENANCE_GUC


@contextlib.contextmanager
def audit_maintenance(connection=default_connection) -> Iterator[None]:
    """Switch the bypass on for this connection for the block, then off again."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"SET {AUDIT_MAINTENANCE_GUC} = 'on'")
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute(f"RESET {AUDIT_MAINTENANCE_GUC}")
    else:
        connection.audit_maintenance = True
        try:
            yield
        finally:
            connection.audit_maintenance = False


def tamper(sql: str, params: list | None = None) -> None:
    """Change audit rows as someone with the table owner's rights could (SET the variable)."""
    with audit_maintenance(), default_connection.cursor() as cursor:
        cursor.execute(sql, params or [])
