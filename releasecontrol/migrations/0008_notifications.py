"""The notifications outbox and its delivery attempts; each environment's notification
emails, webhook URL and webhook secret."""

import django.core.validators
import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

import releasecontrol.models


class Migration(migrations.Migration):
    dependencies = [
        ("releasecontrol", "0007_role_permissions_resync"),
    ]

    operations = [
        migrations.CreateModel(
            name="DeliveryAttempt",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("number", models.PositiveIntegerField()),
                ("attempted_at", models.DateTimeField()),
                (
                    "outcome",
                    models.CharField(
                        choices=[("delivered", "Delivered"), ("failed", "Failed")], max_length=10
                    ),
                ),
                ("status_code", models.PositiveIntegerField(blank=True, null=True)),
                ("error", models.TextField(blank=True)),
                ("duration_ms", models.PositiveIntegerField()),
            ],
            options={
                "ordering": ["notification", "number"],
            },
        ),
        migrations.CreateModel(
            name="Notification",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("event", models.CharField(max_length=100)),
                (
                    "channel",
                    models.CharField(
                        choices=[("email", "Email"), ("webhook", "Webhook")], max_length=10
                    ),
                ),
                ("recipients", models.JSONField(blank=True, default=list)),
                ("webhook_url", models.URLField(blank=True, max_length=500)),
                ("subject", models.CharField(max_length=300)),
                ("text", models.TextField()),
                ("link", models.CharField(blank=True, max_length=500)),
                ("payload", models.JSONField(default=dict)),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("pending", "Pending"),
                            ("delivered", "Delivered"),
                            ("failed", "Failed"),
                        ],
                        default="pending",
                        max_length=10,
                    ),
                ),
                ("attempts", models.PositiveIntegerField(default=0)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("next_attempt_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("delivered_at", models.DateTimeField(blank=True, null=True)),
                ("last_error", models.TextField(blank=True)),
            ],
            options={
                "ordering": ["-id"],
            },
        ),
        migrations.AddField(
            model_name="environment",
            name="notification_emails",
            field=models.TextField(
                blank=True,
                help_text="Addresses that receive this environment's notifications, comma-separated.",
                validators=[releasecontrol.models.validate_email_list],
            ),
        ),
        migrations.AddField(
            model_name="environment",
            name="webhook_secret",
            field=models.CharField(blank=True, max_length=200),
        ),
        migrations.AddField(
            model_name="environment",
            name="webhook_url",
            field=models.URLField(
                blank=True,
                help_text="Receives each notification as a signed JSON POST.",
                max_length=500,
                validators=[django.core.validators.URLValidator(schemes=["http", "https"])],
            ),
        ),
        migrations.AddConstraint(
            model_name="environment",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("webhook_url", ""),
                    models.Q(("webhook_secret", ""), _negated=True),
                    _connector="OR",
                ),
                name="environment_webhook_needs_a_secret",
            ),
        ),
        migrations.AddField(
            model_name="notification",
            name="environment",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="notifications",
                to="releasecontrol.environment",
            ),
        ),
        migrations.AddField(
            model_name="deliveryattempt",
            name="notification",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="delivery_attempts",
                to="releasecontrol.notification",
            ),
        ),
        migrations.AddIndex(
            model_name="notification",
            index=models.Index(
                condition=models.Q(("status", "pending")),
                fields=["next_attempt_at", "id"],
                name="notification_due_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="notification",
            index=models.Index(fields=["environment", "-id"], name="notification_env_idx"),
        ),
        migrations.AddConstraint(
            model_name="notification",
            constraint=models.CheckConstraint(
                condition=models.Q(("channel__in", ["email", "webhook"])),
                name="notification_channel_valid",
            ),
        ),
        migrations.AddConstraint(
            model_name="notification",
            constraint=models.CheckConstraint(
                condition=models.Q(("status__in", ["pending", "delivered", "failed"])),
                name="notification_status_valid",
            ),
        ),
        migrations.AddConstraint(
            model_name="notification",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("delivered_at__isnull", False), ("status", "delivered")),
                    models.Q(
                        models.Q(("status", "delivered"), _negated=True),
                        ("delivered_at__isnull", True),
                    ),
                    _connector="OR",
                ),
                name="notification_delivered_when",
            ),
        ),
        migrations.AddConstraint(
            model_name="deliveryattempt",
            constraint=models.UniqueConstraint(
                fields=("notification", "number"), name="deliveryattempt_unique_number"
            ),
        ),
    ]
