"""The outbox: one row per message and channel, written in the notifying action's transaction,
and every attempt to deliver it."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    WEBHOOK = "webhook", "Webhook"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"  # waiting for its next attempt
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"  # gave up after the last allowed attempt


class Notification(models.Model):
    """One message to one channel of one environment (its addresses, or its webhook)."""

    environment = models.ForeignKey(
        "releasecontrol.Environment", on_delete=models.PROTECT, related_name="notifications"
    )
    event = models.CharField(max_length=100)  # e.g. approval.approved
    channel = models.CharField(max_length=10, choices=Channel.choices)
    # Email: the addresses; webhook: the URL. As configured when the message was written.
    recipients = models.JSONField(default=list, blank=True)
    webhook_url = models.URLField(max_length=500, blank=True)
    subject = models.CharField(max_length=300)
    text = models.TextField()
    link = models.CharField(max_length=500, blank=True)
    payload = models.JSONField(default=dict)
    status = models.CharField(
        max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            # The delivery task's query: due pending rows, oldest due first.
            models.Index(
                fields=["next_attempt_at", "id"],
                condition=Q(status="pending"),
                name="notification_due_idx",
            ),
            models.Index(fields=["environment", "-id"], name="notification_env_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(channel__in=["email", "webhook"]), name="notification_channel_valid"
            ),
            models.CheckConstraint(
                condition=Q(status__in=["pending", "delivered", "failed"]),
                name="notification_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(status="delivered", delivered_at__isnull=False)
                | (~Q(status="delivered") & Q(delivered_at__isnull=True)),
                name="notification_delivered_when",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.event} by {self.channel} ({self.status})"

    @property
    def destination(self) -> str:
        return ", ".join(self.recipients) if self.channel == Channel.EMAIL else self.webhook_url


class AttemptOutcome(models.TextChoices):
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


class DeliveryAttempt(models.Model):
    """One try at delivering a notification: when, how it went, how long it took."""

    notification = models.ForeignKey(
        Notification, on_delete=models.CASCADE, related_name="delivery_attempts"
    )
    number = models.PositiveIntegerField()  # 1 for the first try
    attempted_at = models.DateTimeField()
    outcome = models.CharField(max_length=10, choices=AttemptOutcome.choices)
    # The webhook's HTTP status, or the SMTP server's reply code when it refused.
    status_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField()

    class Meta:
        ordering = ["notification", "number"]
        constraints = [
            models.UniqueConstraint(
                fields=["notification", "number"], name="deliveryattempt_unique_number"
            ),
        ]

    def __str__(self) -> str:
        return f"attempt {self.number} of #{self.notification_id}: {self.outcome}"
