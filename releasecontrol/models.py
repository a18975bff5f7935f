"""The core every app uses: people and agents, their tokens, environments, role grants, audit."""

from __future__ import annotations

import datetime as dt
import re

from django.contrib.auth.models import AbstractUser, UserManager
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email
from django.db import models
from django.db.models import Q
from django.utils import timezone

from .credentials import digest_of

SYSTEM_USERNAME = "system"


def email_list(text: str) -> list[str]:
    """Addresses separated by commas, semicolons or white space."""
    return [a for a in re.split(r"[\s,;]+", text or "") if a]


def validate_email_list(text: str) -> None:
    bad = []
    for address in email_list(text):
        try:
            validate_email(address)
        except ValidationError:
            bad.append(address)
    if bad:
        raise ValidationError(f"Not an email address: {', '.join(bad)}")


class UserKind(models.TextChoices):
    HUMAN = "human", "Human"
    AGENT = "agent", "Agent (AI agent, bot, CI)"
    SYSTEM = "system", "System (automation)"


class User(AbstractUser):
    """A person, an agent account, or the one system actor that automation acts as."""

    kind = models.CharField(max_length=10, choices=UserKind.choices, default=UserKind.HUMAN)

    objects = UserManager()

    class Meta:
        constraints = [
            # Only people may hold admin powers: an agent's kind caps whatever it is given.
            models.CheckConstraint(
                condition=Q(kind="human") | Q(is_superuser=False, is_staff=False),
                name="user_only_humans_are_staff",
            ),
        ]

    @property
    def is_human(self) -> bool:
        return self.kind == UserKind.HUMAN

    @property
    def is_agent(self) -> bool:
        return self.kind == UserKind.AGENT

    @property
    def is_system(self) -> bool:
        return self.kind == UserKind.SYSTEM

    @classmethod
    def system(cls) -> User:
        """The system actor, made by migration; automation records its actions under it."""
        return cls.objects.get(username=SYSTEM_USERNAME, kind=UserKind.SYSTEM)


class ApiTokenQuerySet(models.QuerySet):
    def usable(self) -> ApiTokenQuerySet:
        now = timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=now)
        )


class ApiToken(models.Model):
    """A personal API token. Only its SHA-256 digest is kept; the token is shown once."""

    PREFIX = "rcp_"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    digest = models.CharField(max_length=64, unique=True)
    # The first characters, so a person can tell their tokens apart without the secret.
    hint = models.CharField(max_length=16)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.hint}…)"

    digest_of = staticmethod(digest_of)

    @property
    def is_usable(self) -> bool:
        return self.revoked_at is None and (
            self.expires_at is None or self.expires_at > timezone.now()
        )


class Tier(models.TextChoices):
    DEVELOPMENT = "development", "Development"
    STAGING = "staging", "Staging"
    PRODUCTION = "production", "Production"


class Environment(models.Model):
    """A place changes reach in order: development, staging, production."""

    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100)
    tier = models.CharField(max_length=20, choices=Tier.choices)
    position = models.PositiveSmallIntegerField(
        help_text="Place on the promotion path, lowest first."
    )
    approvals_required = models.PositiveSmallIntegerField(
        default=0, help_text="Approvals needed from people other than the requester."
    )
    require_approval_for_increase = models.BooleanField(
        default=False,
        help_text="Changes that increase exposure wait for an approval request.",
    )
    colour = models.CharField(max_length=7, default="#2563eb")
    kill_switch_engaged = models.BooleanField(default=False)
    kill_switch_engaged_at = models.DateTimeField(null=True, blank=True)
    kill_switch_engaged_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    kill_switch_reason = models.TextField(blank=True)
    # Bumped in the same transaction as any change to this environment's flags:
    # evaluating processes compare it to their snapshot.
    flags_version = models.BigIntegerField(default=1)
    # Where this environment's notifications go (releasecontrol/notifications).
    notification_emails = models.TextField(
        blank=True,
        validators=[validate_email_list],
        help_text="Addresses that receive this environment's notifications, comma-separated.",
    )
    webhook_url = models.URLField(
        max_length=500,
        blank=True,
        validators=[URLValidator(schemes=["http", "https"])],
        help_text="Receives each notification as a signed JSON POST.",
    )
    # Signs webhook bodies (HMAC-SHA256). Write-only in admin, never logged or audited.
    webhook_secret = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["position"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(tier="production") | Q(approvals_required__gte=1),
                name="environment_production_needs_an_approval",
            ),
            # Requiring approval for increases means someone must approve: at least one go.
            models.CheckConstraint(
                condition=Q(require_approval_for_increase=False) | Q(approvals_required__gte=1),
                name="environment_approval_for_increase_needs_an_approval",
            ),
            models.UniqueConstraint(fields=["position"], name="environment_unique_position"),
            # An unsigned webhook could not be told from a forged one.
            models.CheckConstraint(
                condition=Q(webhook_url="") | ~Q(webhook_secret=""),
                name="environment_webhook_needs_a_secret",
            ),
        ]
        permissions = [
            ("change_flags", "Change flag states"),
            ("drive_releases", "Start, advance, pause and roll back releases"),
            ("operate_kill_switch", "Engage and release kill switches"),
            ("request_changes", "Prepare checklists and request approval"),
            ("submit_metrics", "Submit metric samples"),
            ("approve_changes", "Approve or reject requests"),
            ("deploy", "Execute an approved deployment"),
            ("view_audit", "Read the audit trail"),
            ("export_audit", "Export the audit trail"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_production(self) -> bool:
        return self.tier == Tier.PRODUCTION

    @property
    def notification_email_list(self) -> list[str]:
        return email_list(self.notification_emails)

    def clean(self) -> None:
        if self.webhook_url and not self.webhook_secret:
            raise ValidationError({"webhook_secret": "A webhook needs a secret to sign with."})


class Role(models.TextChoices):
    RELEASE_MANAGER = "release_manager", "Release manager"
    ONCALL = "oncall", "On-call"
    DEVELOPER = "developer", "Developer"
    AUDITOR = "auditor", "Auditor"
    AGENT = "agent", "Agent"


class RoleGrant(models.Model):
    """A user holds a role on one environment; turned into guardian permissions on it."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="role_grants")
    role = models.CharField(max_length=20, choices=Role.choices)
    environment = models.ForeignKey(
        Environment, on_delete=models.CASCADE, related_name="role_grants"
    )
    granted_by = models.ForeignKey(
        User, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    granted_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["environment__position", "user__username"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "role", "environment"], name="rolegrant_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} is {self.get_role_display()} on {self.environment}"


class Outcome(models.TextChoices):
    OK = "ok", "ok"
    DENIED = "denied", "denied"


class AuditEvent(models.Model):
    """One action, as it happened. Append-only (database trigger) and hash-chained."""

    created_at = models.DateTimeField()
    actor = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    actor_kind = models.CharField(max_length=10, choices=UserKind.choices)
    actor_name = models.CharField(max_length=150)
    action = models.CharField(max_length=100)
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    environment = models.ForeignKey(
        Environment,
        to_field="slug",
        db_column="environment",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    target_type = models.CharField(max_length=50, blank=True)
    target_id = models.CharField(max_length=100, blank=True)
    target_name = models.CharField(max_length=200, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    reason = models.TextField(blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="audit_time_idx"),
            models.Index(fields=["environment", "-id"], name="audit_env_idx"),
            models.Index(fields=["actor", "-id"], name="audit_actor_idx"),
            models.Index(fields=["action", "-id"], name="audit_action_idx"),
            models.Index(fields=["target_type", "target_id", "-id"], name="audit_target_idx"),
            # The explorer's filters, so that a first page of rare matches is one index range
            # in id order, not a walk back through the table (docs/performance.md#audit): the
            # actor filter is by recorded name; environment + outcome + actor kind is the
            # triage view ("production denials by agents"); outcome + actor kind the same
            # across environments. Common values are served by the primary key.
            models.Index(fields=["actor_name", "-id"], name="audit_actor_name_idx"),
            models.Index(
                fields=["environment", "outcome", "actor_kind", "-id"], name="audit_triage_idx"
            ),
            models.Index(fields=["outcome", "actor_kind", "-id"], name="audit_outcome_kind_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.action} by {self.actor_name} ({self.outcome})"


class MonitorHeartbeat(models.Model):
    """When the gate monitor last proved it is alive (beat queued, a worker ran it)."""

    name = models.CharField(max_length=50, unique=True)
    beat_at = models.DateTimeField()
    hostname = models.CharField(max_length=200, blank=True)

    def __str__(self) -> str:
        return f"{self.name} at {self.beat_at:%Y-%m-%d %H:%M:%S}"


class VerificationStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    INTACT = "intact", "Intact"
    BROKEN = "broken", "Broken"
    FAILED = "failed", "Failed"


class AuditVerification(models.Model):
    """One walk of the audit chain (all of it, or ids from_id..to_id) by a Celery task.

    The task stores its progress here after every chunk, so any web node can show it.
    """

    requested_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    from_id = models.BigIntegerField(null=True, blank=True)
    to_id = models.BigIntegerField(null=True, blank=True)
    status = models.CharField(
        max_length=10, choices=VerificationStatus.choices, default=VerificationStatus.QUEUED
    )
    total = models.BigIntegerField(default=0)  # events in the range when the walk began
    checked = models.BigIntegerField(default=0)
    # The last event verified and its hash: the head of what is proven intact.
    last_id = models.BigIntegerField(null=True, blank=True)
    last_hash = models.CharField(max_length=64, blank=True)
    # Plain ids, not foreign keys: the event that breaks the chain may be gone.
    first_broken_id = models.BigIntegerField(null=True, blank=True)
    problem = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    progress_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(from_id__isnull=True)
                | Q(to_id__isnull=True)
                | Q(from_id__lte=models.F("to_id")),
                name="auditverification_range_ordered",
            ),
        ]

    def __str__(self) -> str:
        return f"verification #{self.pk}: {self.status}"

    @property
    def in_progress(self) -> bool:
        return self.status in (VerificationStatus.QUEUED, VerificationStatus.RUNNING)

    # A running walk saves its progress after every chunk (seconds each): this long without
    # any, its worker is gone.
    STALLED_AFTER = dt.timedelta(minutes=2)

    @property
    def stalled(self) -> bool:
        return (
            self.status == VerificationStatus.RUNNING
            and self.progress_at is not None
            and timezone.now() - self.progress_at > self.STALLED_AFTER
        )

    @property
    def percent(self) -> int:
        if not self.total:
            return 100 if not self.in_progress else 0
        return min(100, int(self.checked * 100 / self.total))


class IdempotencyKey(models.Model):
    """The first answer to a creating request sent with an `Idempotency-Key` header.

    Per account: the same key with the same request answers this again (a retry after a lost
    connection creates nothing twice); the same key with another request is a conflict. Only
    successful answers are kept: a refused request keeps nothing and may be sent again.
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=200)
    # sha256 of the method, path and canonical JSON body the key was first used with.
    fingerprint = models.CharField(max_length=64)
    # Written in the same transaction as what the request created, so never seen half-made.
    status = models.PositiveSmallIntegerField(default=0)
    response = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="idempotencykey_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id}: {self.key} ({self.status})"


# The notifications outbox lives in its own package; its models belong to this app.
from .notifications.models import DeliveryAttempt, Notification  # noqa: E402, F401
