"""The audit table refuses UPDATE, DELETE and TRUNCATE, except on a connection that the
test suite marks for its flushes (see releasecontrol/db.py)."""

from django.db import migrations

PG_FORWARD = """
CREATE OR REPLACE FUNCTION releasecontrol_audit_refuse() RETURNS trigger AS $$
BEGIN
    IF current_setting('releasecontrol.audit_maintenance', true) = 'on' THEN
        IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit events are append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER releasecontrol_audit_no_change
    BEFORE UPDATE OR DELETE ON releasecontrol_auditevent
    FOR EACH ROW EXECUTE FUNCTION releasecontrol_audit_refuse();
CREATE TRIGGER releasecontrol_audit_no_truncate
    BEFORE TRUNCATE ON releasecontrol_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION releasecontrol_audit_refuse();
"""
PG_BACKWARD = """
DROP TRIGGER IF EXISTS releasecontrol_audit_no_truncate ON releasecontrol_auditevent;
DROP TRIGGER IF EXISTS releasecontrol_audit_no_change ON releasecontrol_auditevent;
DROP FUNCTION IF EXISTS releasecontrol_audit_refuse();
"""
# SQLite has no TRUNCATE (Django flushes with DELETE). The function is registered on
# every connection; where it is missing (the sqlite3 shell) the trigger fails closed.
SQLITE_FORWARD = [
    """CREATE TRIGGER releasecontrol_audit_no_update BEFORE UPDATE ON releasecontrol_auditevent
       WHEN releasecontrol_audit_maintenance() = 0
       BEGIN SELECT RAISE(ABORT, 'audit events are append-only: UPDATE refused'); END""",
    """CREATE TRIGGER releasecontrol_audit_no_delete BEFORE DELETE ON releasecontrol_auditevent
       WHEN releasecontrol_audit_maintenance() = 0
       BEGIN SELECT RAISE(ABORT, 'audit events are append-only: DELETE refused'); END""",
]
SQLITE_BACKWARD = [
    "DROP TRIGGER IF EXISTS releasecontrol_audit_no_update",
    "DROP TRIGGER IF EXISTS releasecontrol_audit_no_delete",
]


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PG_FORWARD, params=None)
    elif schema_editor.connection.vendor == "sqlite":
        for statement in SQLITE_FORWARD:
            schema_editor.execute(statement)
    else:
        raise NotImplementedError("The audit trail needs PostgreSQL or SQLite.")


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PG_BACKWARD, params=None)
    else:
        for statement in SQLITE_BACKWARD:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("releasecontrol", "0002_system_user_and_environments")]

    operations = [migrations.RunPython(forward, backward)]
