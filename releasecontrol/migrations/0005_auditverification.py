"""Audit chain verifications: progress of the Celery task that walks the chain, readable by
every web node."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("releasecontrol", "0004_audit_explorer_indexes"),
    ]

    operations = [
        migrations.CreateModel(
            name="AuditVerification",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("from_id", models.BigIntegerField(blank=True, null=True)),
                ("to_id", models.BigIntegerField(blank=True, null=True)),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("queued", "Queued"),
                            ("running", "Running"),
                            ("intact", "Intact"),
                            ("broken", "Broken"),
                            ("failed", "Failed"),
                        ],
                        default="queued",
                        max_length=10,
                    ),
                ),
                ("total", models.BigIntegerField(default=0)),
                ("checked", models.BigIntegerField(default=0)),
                ("last_id", models.BigIntegerField(blank=True, null=True)),
                ("last_hash", models.CharField(blank=True, max_length=64)),
                ("first_broken_id", models.BigIntegerField(blank=True, null=True)),
                ("problem", models.TextField(blank=True)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("started_at", models.DateTimeField(blank=True, null=True)),
                ("progress_at", models.DateTimeField(blank=True, null=True)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                (
                    "requested_by",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["-id"],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(
                            ("from_id__isnull", True),
                            ("to_id__isnull", True),
                            ("from_id__lte", models.F("to_id")),
                            _connector="OR",
                        ),
                        name="auditverification_range_ordered",
                    )
                ],
            },
        ),
    ]
