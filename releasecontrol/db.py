"""Connection hooks: the audit table's way past its append-only trigger, for test flushes only.

A connection whose settings carry AUDIT_MAINTENANCE = True (only the test
suite's do, see tests/settings.py) may clear the audit table between tests.
Production connections never carry it, so their triggers refuse every UPDATE,
DELETE and TRUNCATE.
"""

from django.db.backends.signals import connection_created
from django.dispatch import receiver

AUDIT_MAINTENANCE_GUC = "releasecontrol.audit_maintenance"


@receiver(connection_created)
def _audit_maintenance(sender, connection, **kwargs) -> None:
    allowed = bool(connection.settings_dict.get("AUDIT_MAINTENANCE"))
    if connection.vendor == "sqlite":
        connection.connection.create_function(
            "releasecontrol_audit_maintenance", 0, lambda: int(allowed), deterministic=True
        )
    elif connection.vendor == "postgresql" and allowed:
        with connection.cursor() as cursor:
            cursor.execute(f"SET {AUDIT_MAINTENANCE_GUC} = 'on'")
