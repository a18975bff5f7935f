"""Checklists, approval requests, decisions, blackout windows and post-reviews."""

from __future__ import annotations

import re
import zoneinfo

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from releasecontrol.models import Environment, User

# --- Checklist templates --------------------------------------------------------------------


class ChecklistTemplate(models.Model):
    """A named list of items a request's checklist is copied from (e.g. `deployment`)."""

    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ChecklistTemplateItem(models.Model):
    template = models.ForeignKey(ChecklistTemplate, on_delete=models.CASCADE, related_name="items")
    position = models.PositiveSmallIntegerField()
    section = models.CharField(max_length=100)
    text = models.CharField(max_length=500)
    required = models.BooleanField(default=True)
    evidence_required = models.BooleanField(default=False)

    class Meta:
        ordering = ["template", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["template", "position"], name="checklisttemplateitem_unique_position"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.section}: {self.text}"


class EnvironmentApprovalSettings(models.Model):
    """Per environment: the checklist a request gets when it names none, and whether a
    request there may go without one."""

    environment = models.OneToOneField(
        Environment, on_delete=models.CASCADE, related_name="approval_settings"
    )
    default_checklist = models.ForeignKey(
        ChecklistTemplate, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    checklist_optional = models.BooleanField(
        default=False, help_text='Requests here may say "checklist": "none".'
    )

    class Meta:
        verbose_name_plural = "environment approval settings"

    def __str__(self) -> str:
        return f"Approval settings of {self.environment}"


# --- Requests -------------------------------------------------------------------------------


class Urgency(models.TextChoices):
    ROUTINE = "routine", "Routine"
    URGENT = "urgent", "Urgent"
    EMERGENCY = "emergency", "Emergency"


class Risk(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


class Status(models.TextChoices):
    PENDING = "pending", "Pending"
    CHANGES_REQUESTED = "changes_requested", "Changes requested"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    EXECUTED = "executed", "Executed"
    EXPIRED = "expired", "Expired"
    CANCELLED = "cancelled", "Cancelled"


# A request in one of these may still be edited, decided (pending), or executed (approved).
OPEN_STATUSES = (Status.PENDING, Status.CHANGES_REQUESTED, Status.APPROVED)
TERMINAL_STATUSES = (Status.REJECTED, Status.EXECUTED, Status.EXPIRED, Status.CANCELLED)


def _choices_check(field: str, choices: type[models.TextChoices], name: str):
    return models.CheckConstraint(condition=Q(**{f"{field}__in": choices.values}), name=name)


def _window_check(start: str, end: str, name: str):
    return models.CheckConstraint(
        condition=Q(**{f"{start}__isnull": True, f"{end}__isnull": True})
        | Q(**{f"{start}__isnull": False, f"{end}__gt": models.F(start)}),
        name=name,
    )


class ApprovalRequest(models.Model):
    """One requestable action with its parameters in one environment, waiting for people's go."""

    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="+")
    action = models.CharField(max_length=100)
    parameters = models.JSONField(default=dict)
    title = models.CharField(max_length=200)
    urgency = models.CharField(max_length=10, choices=Urgency.choices, default=Urgency.ROUTINE)
    risk = models.CharField(max_length=10, choices=Risk.choices, default=Risk.MEDIUM)
    impact = models.TextField(blank=True)
    mitigation = models.TextField(blank=True)
    rollback_plan = models.TextField(blank=True)
    window_start = models.DateTimeField(null=True, blank=True)
    window_end = models.DateTimeField(null=True, blank=True)
    alternative_window_start = models.DateTimeField(null=True, blank=True)
    alternative_window_end = models.DateTimeField(null=True, blank=True)
    checklist_template = models.ForeignKey(
        ChecklistTemplate, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    revision = models.PositiveIntegerField(default=1)
    preview = models.JSONField(default=dict)
    preview_hash = models.CharField(max_length=64)
    requested_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    # Everyone who changed the request after it was made (fields, parameters, checklist):
    # none of them may decide it.
    editors = models.ManyToManyField(User, blank=True, related_name="+")
    # Only a person makes a request an emergency: one who declared it, or the first go.
    emergency_confirmed_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    approved_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    executed_at = models.DateTimeField(null=True, blank=True)
    executed_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    result = models.JSONField(null=True, blank=True)
    # Set when the scheduler could not execute an approved request (the state drifted, a
    # blackout window): it is not retried until someone edits or executes it.
    suspended_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["status", "environment", "-id"], name="approval_status_idx"),
            models.Index(fields=["status", "expires_at"], name="approval_expiry_idx"),
            models.Index(fields=["requested_by", "-id"], name="approval_requester_idx"),
        ]
        constraints = [
            _choices_check("status", Status, "approvalrequest_status_valid"),
            _choices_check("urgency", Urgency, "approvalrequest_urgency_valid"),
            _choices_check("risk", Risk, "approvalrequest_risk_valid"),
            models.CheckConstraint(
                condition=Q(revision__gte=1), name="approvalrequest_revision_positive"
            ),
            models.CheckConstraint(
                condition=Q(preview_hash__regex=r"^[0-9a-f]{64}$"),
                name="approvalrequest_preview_hash_sha256",
            ),
            _window_check("window_start", "window_end", "approvalrequest_window_ordered"),
            _window_check(
                "alternative_window_start",
                "alternative_window_end",
                "approvalrequest_alternative_window_ordered",
            ),
            models.CheckConstraint(
                condition=Q(status="executed", executed_at__isnull=False, executed_by__isnull=False)
                | (~Q(status="executed") & Q(executed_at__isnull=True)),
                name="approvalrequest_executed_has_when_and_who",
            ),
            models.CheckConstraint(
                condition=Q(
                    status__in=[s.value for s in TERMINAL_STATUSES], closed_at__isnull=False
                )
                | Q(status__in=[s.value for s in OPEN_STATUSES], closed_at__isnull=True),
                name="approvalrequest_closed_when_terminal",
            ),
            models.CheckConstraint(
                condition=~Q(status="approved") | Q(approved_at__isnull=False),
                name="approvalrequest_approved_has_when",
            ),
            models.CheckConstraint(
                condition=Q(expires_at__gte=models.F("created_at")),
                name="approvalrequest_expires_after_creation",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.title}"

    @property
    def is_emergency(self) -> bool:
        return self.urgency == Urgency.EMERGENCY

    @property
    def approvals_required(self) -> int:
        """Valid gos needed now: the environment's number read at this moment (at least one:
        a request always waits for someone), one more for an emergency."""
        return max(1, self.environment.approvals_required) + (1 if self.is_emergency else 0)

    @property
    def windows(self) -> list[tuple]:
        return [
            (start, end)
            for start, end in (
                (self.window_start, self.window_end),
                (self.alternative_window_start, self.alternative_window_end),
            )
            if start is not None
        ]


# Evidence is text, or a link; a link (anything opening with "scheme:" and no space after it)
# must be http(s), so it can be shown as a link safely.
EVIDENCE_LINK = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:\S")
_http_url = URLValidator(schemes=["http", "https"])


def validate_evidence(value: str) -> None:
    if any(ord(c) < 32 and c not in "\n\t" for c in value):
        raise ValidationError("Evidence may not hold control characters.")
    if EVIDENCE_LINK.match(value.strip()):
        try:
            _http_url(value.strip())
        except ValidationError:
            raise ValidationError(
                "An evidence link must be an http(s) URL; otherwise write the evidence as text."
            ) from None


class ChecklistItem(models.Model):
    """One item of one request's checklist, copied from its template."""

    request = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="checklist")
    position = models.PositiveSmallIntegerField()
    section = models.CharField(max_length=100)
    text = models.CharField(max_length=500)
    required = models.BooleanField(default=True)
    evidence_required = models.BooleanField(default=False)
    checked = models.BooleanField(default=False)
    checked_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    checked_at = models.DateTimeField(null=True, blank=True)
    evidence = models.TextField(blank=True, max_length=2000, validators=[validate_evidence])

    class Meta:
        ordering = ["request", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["request", "position"], name="checklistitem_unique_position"
            ),
            models.CheckConstraint(
                condition=Q(checked=True, checked_by__isnull=False, checked_at__isnull=False)
                | Q(checked=False, checked_by__isnull=True, checked_at__isnull=True),
                name="checklistitem_checked_has_who_and_when",
            ),
            models.CheckConstraint(
                condition=~Q(checked=True, evidence_required=True, evidence=""),
                name="checklistitem_checked_has_required_evidence",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.section}: {self.text}"

    @property
    def evidence_link(self) -> str | None:
        """The evidence as a URL that is safe to link to, or None when it is text."""
        value = self.evidence.strip()
        return value if EVIDENCE_LINK.match(value) and value.lower().startswith("http") else None


class DecisionKind(models.TextChoices):
    GO = "go", "Go"
    ADJUST = "adjust", "Adjust"
    NO_GO = "no_go", "No-go"


class Decision(models.Model):
    """A person's go, adjust or no-go on one revision of a request, made on its preview hash."""

    request = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="decisions")
    revision = models.PositiveIntegerField()
    decider = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    decision = models.CharField(max_length=10, choices=DecisionKind.choices)
    comment = models.TextField(blank=True)
    preview_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    # A later revision voids every go made before it: kept, marked, shown struck through.
    void = models.BooleanField(default=False)
    voided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["request", "id"]
        constraints = [
            _choices_check("decision", DecisionKind, "decision_kind_valid"),
            models.UniqueConstraint(
                fields=["request", "revision", "decider"],
                condition=Q(decision="go"),
                name="decision_one_go_per_person_per_revision",
            ),
            models.CheckConstraint(
                condition=Q(void=True, voided_at__isnull=False)
                | Q(void=False, voided_at__isnull=True),
                name="decision_void_has_when",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_decision_display()} by {self.decider} on revision {self.revision}"


class PostReview(models.Model):
    """Opened when an emergency request is executed; a release manager closes it with notes."""

    request = models.OneToOneField(
        ApprovalRequest, on_delete=models.CASCADE, related_name="post_review"
    )
    opened_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    notes = models.TextField(blank=True)

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(closed_at__isnull=True, closed_by__isnull=True)
                | (Q(closed_at__isnull=False, closed_by__isnull=False) & ~Q(notes="")),
                name="postreview_closed_has_who_and_notes",
            ),
        ]

    def __str__(self) -> str:
        return f"Post-review of {self.request}"

    @property
    def is_open(self) -> bool:
        return self.closed_at is None


# --- Blackout windows -----------------------------------------------------------------------


class Weekday(models.IntegerChoices):
    MON = 0, "Monday"
    TUE = 1, "Tuesday"
    WED = 2, "Wednesday"
    THU = 3, "Thursday"
    FRI = 4, "Friday"
    SAT = 5, "Saturday"
    SUN = 6, "Sunday"


class BlackoutKind(models.TextChoices):
    ONE_OFF = "one_off", "One-off"
    WEEKLY = "weekly", "Weekly"


def validate_time_zone(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"{value!r} is not a time zone (e.g. Europe/Berlin).") from None


class BlackoutWindowQuerySet(models.QuerySet):
    def active(self) -> BlackoutWindowQuerySet:
        return self.filter(deleted_at__isnull=True)


class BlackoutWindow(models.Model):
    """A time when nothing increases exposure in an environment: one-off, or weekly in a zone.

    Deleting keeps the row (deleted_at) so requests and audit events can still name it.
    """

    environment = models.ForeignKey(
        Environment, on_delete=models.PROTECT, related_name="blackout_windows"
    )
    kind = models.CharField(max_length=10, choices=BlackoutKind.choices)
    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    day = models.PositiveSmallIntegerField(choices=Weekday.choices, null=True, blank=True)
    start_time = models.TimeField(null=True, blank=True)
    end_day = models.PositiveSmallIntegerField(choices=Weekday.choices, null=True, blank=True)
    end_time = models.TimeField(null=True, blank=True)
    time_zone = models.CharField(max_length=64, default="UTC", validators=[validate_time_zone])
    reason = models.TextField()
    created_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    deleted_at = models.DateTimeField(null=True, blank=True)
    deleted_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    objects = BlackoutWindowQuerySet.as_manager()

    class Meta:
        ordering = ["environment", "id"]
        constraints = [
            _choices_check("kind", BlackoutKind, "blackoutwindow_kind_valid"),
            models.CheckConstraint(
                condition=Q(
                    kind="one_off",
                    starts_at__isnull=False,
                    ends_at__gt=models.F("starts_at"),
                    day__isnull=True,
                    start_time__isnull=True,
                    end_day__isnull=True,
                    end_time__isnull=True,
                )
                | Q(
                    kind="weekly",
                    starts_at__isnull=True,
                    ends_at__isnull=True,
                    day__lte=6,
                    start_time__isnull=False,
                    end_day__lte=6,
                    end_time__isnull=False,
                ),
                name="blackoutwindow_one_off_or_weekly",
            ),
            models.CheckConstraint(condition=~Q(reason=""), name="blackoutwindow_has_reason"),
            models.CheckConstraint(
                condition=Q(deleted_at__isnull=True, deleted_by__isnull=True)
                | Q(deleted_at__isnull=False, deleted_by__isnull=False),
                name="blackoutwindow_deleted_has_who",
            ),
        ]

    def __str__(self) -> str:
        if self.kind == BlackoutKind.ONE_OFF:
            return (
                f"{self.environment}: {self.starts_at:%Y-%m-%d %H:%M} to "
                f"{self.ends_at:%Y-%m-%d %H:%M} UTC"
            )
        return (
            f"{self.environment}: every {Weekday(self.day).label} {self.start_time:%H:%M} to "
            f"{Weekday(self.end_day).label} {self.end_time:%H:%M} ({self.time_zone})"
        )
