"""Indexes for the audit explorer's filters, so each first page stays one index range in id
order at millions of events (benchmarks/audit_export.py, docs/performance.md#audit).

On PostgreSQL they are built CONCURRENTLY: a plain CREATE INDEX would block every audited
action (each appends to this table) while it reads the table, about 4 s per index at a
million events.
"""

from django.db import migrations, models

INDEXES = [
    models.Index(fields=["actor_name", "-id"], name="audit_actor_name_idx"),
    models.Index(fields=["environment", "outcome", "actor_kind", "-id"], name="audit_triage_idx"),
    models.Index(fields=["outcome", "actor_kind", "-id"], name="audit_outcome_kind_idx"),
]


def forward(apps, schema_editor):
    model = apps.get_model("releasecontrol", "AuditEvent")
    concurrently = schema_editor.connection.vendor == "postgresql"
    for index in INDEXES:
        if concurrently:
            schema_editor.add_index(model, index, concurrently=True)
        else:
            schema_editor.add_index(model, index)


def backward(apps, schema_editor):
    model = apps.get_model("releasecontrol", "AuditEvent")
    for index in INDEXES:
        schema_editor.remove_index(model, index)


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("releasecontrol", "0003_audit_append_only"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddIndex(model_name="auditevent", index=index) for index in INDEXES
            ],
            database_operations=[migrations.RunPython(forward, backward)],
        ),
    ]
