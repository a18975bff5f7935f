"""Connection-level behaviour the audit trail relies on.

- Denials survive: a refusal inside a transaction is kept on the connection and written, in a
  transaction of its own, as soon as the caller's transaction has ended (see
  `releasecontrol.audit.audit_record_denial`). The database backends in
  `releasecontrol/backends/` are Django's own with `DenialsAfterTransaction` mixed in;
  settings.py selects them.
- The audit table's append-only trigger: production connections never switch its bypass
  (the session variable `releasecontrol.audit_maintenance` on PostgreSQL, the attribute
  `audit_maintenance` read by a SQL function on SQLite). The test suite switches it on around
  the flush between transactional tests only (tests/conftest.py).
"""

from __future__ import annotations

import logging
from typing import Any

from django.db.backends.signals import connection_created
from django.dispatch import receiver

AUDIT_MAINTENANCE_GUC = "releasecontrol.audit_maintenance"

logger = logging.getLogger("releasecontrol.audit")


@receiver(connection_created)
def _audit_maintenance(sender, connection, **kwargs) -> None:
    if connection.vendor == "sqlite":
        connection.connection.create_function(
            "releasecontrol_audit_maintenance",
            0,
            lambda: int(getattr(connection, "audit_maintenance", False)),
        )


def caller_transaction_open(connection: Any) -> bool:
    """True while a transaction of the application's is open on this connection.

    A test case's wrapping transaction (Django marks its atomic blocks `_from_testcase`)
    is not the caller's: inside one, what the code under test does ends where its own
    blocks end.
    """
    if not connection.in_atomic_block:
        return not connection.get_autocommit()
    return any(not block._from_testcase for block in connection.atomic_blocks)


class DenialsAfterTransaction:
    """Mixed into the database backend: writes the denials refused inside a transaction once
    that transaction has ended, whichever way it ended."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pending_denials: list[Any] = []

    def set_autocommit(self, autocommit: bool, *args: Any, **kwargs: Any) -> None:
        # Atomic.__exit__ of the outermost block ends here, after its commit or rollback.
        super().set_autocommit(autocommit, *args, **kwargs)
        if autocommit and self.pending_denials and not self.in_atomic_block:
            self._write_pending_denials()

    def savepoint_commit(self, sid: str) -> None:
        # A block nested in a test case's transaction ends here (released or rolled back).
        super().savepoint_commit(sid)
        if self.pending_denials and not caller_transaction_open(self):
            self._write_pending_denials()

    def close(self) -> None:
        if self.pending_denials:
            # The transaction could not end normally (the connection broke): say so loudly,
            # with what was refused, since the event cannot be written any more.
            for denial in self.pending_denials:
                logger.error("audit.denial_lost: %s", denial.describe())
            self.pending_denials = []
        super().close()

    def _write_pending_denials(self) -> None:
        from .audit import write_denials  # the audit package imports the models

        pending, self.pending_denials = self.pending_denials, []
        write_denials(pending)
