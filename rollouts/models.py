"""Releases and their plans (stages), metric gates, samples and evaluations, the release
timeline, emergency rollbacks with their snapshots, and deployments reported by CD pipelines.

Rows here are written only by the rollouts services (rollouts/services.py and the modules it
names); admin is read-only.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from flags.models import Flag, KillSwitch, Mode
from releasecontrol.models import AuditEvent, Environment, User


class ReleaseStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
    IN_PROGRESS = "in_progress", "In progress"
    PAUSED = "paused", "Paused"
    COMPLETED = "completed", "Completed"
    ROLLED_BACK = "rolled_back", "Rolled back"


# A release drives its flags from the moment its start is asked for until it ends.
LIVE_STATUSES = (
    ReleaseStatus.AWAITING_APPROVAL,
    ReleaseStatus.IN_PROGRESS,
    ReleaseStatus.PAUSED,
)
# The gate monitor watches these (a paused release is still evaluated and shown, never advanced).
MONITORED_STATUSES = (ReleaseStatus.IN_PROGRESS, ReleaseStatus.PAUSED)


class ReleaseQuerySet(models.QuerySet):
    def live(self) -> ReleaseQuerySet:
        return self.filter(status__in=LIVE_STATUSES)


class Release(models.Model):
    name = models.CharField(max_length=100)
    version = models.CharField(max_length=64, blank=True)
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="+")
    flags = models.ManyToManyField(Flag, through="ReleaseFlag", related_name="+")
    allowlist = models.JSONField(default=list, blank=True)
    # The template the plan was made from ("five-stage"...), or "" for a custom plan.
    plan_template = models.CharField(max_length=50, blank=True)
    status = models.CharField(
        max_length=20, choices=ReleaseStatus.choices, default=ReleaseStatus.DRAFT
    )
    # Index into stages; null before the start and after the end.
    current_stage_index = models.PositiveSmallIntegerField(null=True, blank=True)
    stage_entered_at = models.DateTimeField(null=True, blank=True)
    # When the current stage's hold began (a failure short of the action, or a resume,
    # restarts it).
    hold_started_at = models.DateTimeField(null=True, blank=True)
    paused_reason = models.TextField(blank=True)
    dead_man_seconds = models.PositiveIntegerField(
        default=300, validators=[MinValueValidator(10), MaxValueValidator(7 * 24 * 3600)]
    )
    # Every edit of the plan or gates bumps it; a start approval names the revision.
    revision = models.PositiveIntegerField(default=1)
    requested_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    # Everyone who edited the plan or gates (their samples never count toward a success
    # in production).
    plan_editors = models.ManyToManyField(User, blank=True, related_name="+")
    # The approved request a production start (or the latest resume) ran on.
    approval_request_id = models.PositiveBigIntegerField(null=True, blank=True)
    # Whom automation follows: in production the first approver of that request (read from
    # the verified approval), cleared when an edit voids it; elsewhere who started it.
    approved_by = models.ForeignKey(
        User, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    started_by = models.ForeignKey(
        User, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # An open request for the next step (release.start / release.advance / release.resume).
    pending_request_id = models.PositiveBigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    objects = ReleaseQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["environment", "status"])]

    def __str__(self) -> str:
        return f"{self.name} {self.version}".strip()

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_STATUSES


class ReleaseFlag(models.Model):
    """A flag a release drives. `live` mirrors the release's status, so the database itself
    holds at most one live release per flag and environment."""

    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="release_flags")
    flag = models.ForeignKey(Flag, on_delete=models.PROTECT, related_name="+")
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="+")
    live = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["release", "flag"], name="release_flag_once"),
            models.UniqueConstraint(
                fields=["flag", "environment"],
                condition=Q(live=True),
                name="one_live_release_per_flag_environment",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.flag_id} in release {self.release_id}"


class Stage(models.Model):
    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="stages")
    index = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=50)
    mode = models.CharField(max_length=20, choices=Mode.choices)
    percentage = models.PositiveSmallIntegerField(default=0)
    hold_seconds = models.PositiveIntegerField(default=0)
    needs_go = models.BooleanField(default=False)

    class Meta:
        ordering = ["release", "index"]
        constraints = [
            models.UniqueConstraint(fields=["release", "index"], name="stage_index_once"),
            models.CheckConstraint(
                condition=Q(percentage__gte=0, percentage__lte=100),
                name="stage_percentage_0_100",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.index + 1}. {self.name}"


class Aggregate(models.TextChoices):
    AVG = "avg"
    MIN = "min"
    MAX = "max"
    SUM = "sum"
    COUNT = "count"
    P50 = "p50"
    P95 = "p95"
    P99 = "p99"
    RATE = "rate"  # sum / window seconds


class Comparator(models.TextChoices):
    GT = ">"
    GE = ">="
    LT = "<"
    LE = "<="


class NoData(models.TextChoices):
    FAIL = "fail"
    PAUSE = "pause"
    PASS = "pass"  # noqa: S105  (a no-data policy, not a password)


class OnFailure(models.TextChoices):
    ROLLBACK = "rollback"
    HALVE = "halve"
    PAUSE = "pause"
    REVIEW = "review"


class Outcome(models.TextChoices):
    SUCCESS = "success"
    FAILURE = "failure"
    INCONCLUSIVE = "inconclusive"
    NO_DATA = "no_data"
    ERROR = "error"


class Gate(models.Model):
    """A failure condition on a metric, on the whole release or one stage.

    `comparator threshold` is the failure: `error_rate avg > 5` fails when the window's
    average exceeds 5. `promql` empty means pushed samples; otherwise the expression is
    evaluated against PROMETHEUS_URL. `baseline` compares the canary cohort with control:
    `{"cohort": "control", "method": "ratio|mann_whitney|binomial|poisson", "ratio": 1.5,
    "confidence": 0.95}`.
    """

    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="gates")
    stage = models.ForeignKey(
        Stage, on_delete=models.CASCADE, null=True, blank=True, related_name="gates"
    )
    name = models.CharField(max_length=100)
    metric = models.CharField(max_length=100)
    aggregate = models.CharField(max_length=10, choices=Aggregate.choices, default=Aggregate.AVG)
    comparator = models.CharField(max_length=2, choices=Comparator.choices, default=Comparator.GT)
    threshold = models.FloatField()
    window_seconds = models.PositiveIntegerField(
        default=300, validators=[MinValueValidator(1), MaxValueValidator(7 * 24 * 3600)]
    )
    min_samples = models.PositiveIntegerField(default=1)
    baseline = models.JSONField(null=True, blank=True)
    promql = models.TextField(blank=True)
    failures_to_act = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(100)]
    )
    no_data = models.CharField(max_length=10, choices=NoData.choices, default=NoData.PAUSE)
    on_failure = models.CharField(
        max_length=10, choices=OnFailure.choices, default=OnFailure.ROLLBACK
    )
    advisory = models.BooleanField(default=False)
    # The monitor's running state for this gate.
    consecutive_failures = models.PositiveIntegerField(default=0)
    consecutive_errors = models.PositiveIntegerField(default=0)
    last_outcome = models.CharField(max_length=20, choices=Outcome.choices, blank=True)
    last_evaluated_at = models.DateTimeField(null=True, blank=True)
    # When an evaluation of this gate was last kept (kept on change and once a minute).
    last_recorded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["release", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["release", "name"], name="gate_name_once"),
        ]

    def __str__(self) -> str:
        return f"{self.name}: {self.aggregate}({self.metric}) {self.comparator} {self.threshold:g}"

    @property
    def source(self) -> str | dict[str, str]:
        return {"prometheus": self.promql} if self.promql else "push"

    @property
    def acts(self) -> bool:
        return not self.advisory


class Cohort(models.TextChoices):
    CANARY = "canary"
    CONTROL = "control"


class MetricSample(models.Model):
    """One pushed measurement. `total` is the trials behind `value` events (binomial and
    Poisson baselines read value as events, total as trials)."""

    id = models.BigAutoField(primary_key=True)
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="+")
    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="samples")
    metric = models.CharField(max_length=100)
    cohort = models.CharField(max_length=20, choices=Cohort.choices, default=Cohort.CANARY)
    value = models.FloatField()
    total = models.FloatField(null=True, blank=True)
    time = models.DateTimeField()
    submitted_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["release", "metric", "cohort", "time"], name="sample_window_idx"),
            models.Index(fields=["time"], name="sample_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.metric}={self.value:g} at {self.time:%Y-%m-%d %H:%M:%S}"


class GateEvaluation(models.Model):
    id = models.BigAutoField(primary_key=True)
    gate = models.ForeignKey(Gate, on_delete=models.CASCADE, related_name="evaluations")
    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="evaluations")
    stage_index = models.PositiveSmallIntegerField(null=True, blank=True)
    evaluated_at = models.DateTimeField()
    outcome = models.CharField(max_length=20, choices=Outcome.choices)
    value = models.FloatField(null=True, blank=True)
    samples = models.PositiveIntegerField(default=0)
    control_value = models.FloatField(null=True, blank=True)
    control_samples = models.PositiveIntegerField(null=True, blank=True)
    p_value = models.FloatField(null=True, blank=True)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    threshold = models.FloatField()
    source = models.CharField(max_length=500)
    detail = models.TextField(blank=True)
    # What the monitor did on this evaluation ("rollback", "halve", "pause", "review",
    # "advisory alert"), if anything.
    action = models.CharField(max_length=50, blank=True)

    class Meta:
        ordering = ["-evaluated_at", "-pk"]
        indexes = [
            models.Index(fields=["release", "evaluated_at"], name="evaluation_release_idx"),
            models.Index(fields=["gate", "evaluated_at"], name="evaluation_gate_idx"),
            models.Index(fields=["evaluated_at"], name="evaluation_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.gate_id}: {self.outcome} at {self.evaluated_at:%Y-%m-%d %H:%M:%S}"


class ReleaseEventKind(models.TextChoices):
    CREATED = "created"
    EDITED = "edited"
    START_REQUESTED = "start_requested"
    STARTED = "started"
    ADVANCED = "advanced"
    GO_REQUESTED = "go_requested"
    PAUSED = "paused"
    RESUMED = "resumed"
    HALVED = "halved"
    ROLLED_BACK = "rolled_back"
    COMPLETED = "completed"
    RETURNED_TO_DRAFT = "returned_to_draft"


class ReleaseEvent(models.Model):
    """The release's timeline (stage changes, automatic actions) as pages and charts show it;
    the audit trail holds the same acts with their evidence."""

    id = models.BigAutoField(primary_key=True)
    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(default=timezone.now)
    kind = models.CharField(max_length=30, choices=ReleaseEventKind.choices)
    stage_index = models.PositiveSmallIntegerField(null=True, blank=True)
    mode = models.CharField(max_length=20, blank=True)
    percentage = models.PositiveSmallIntegerField(null=True, blank=True)
    actor = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    automatic = models.BooleanField(default=False)
    reason = models.TextField(blank=True)
    evidence = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["at", "pk"]
        indexes = [models.Index(fields=["release", "at"], name="release_event_idx")]

    def __str__(self) -> str:
        return f"{self.kind} at {self.at:%Y-%m-%d %H:%M:%S}"


class Rollback(models.Model):
    """An emergency rollback of a whole environment and the snapshot of what it changed.

    `snapshot = {"releases": [{"id", "name", "version", "status", "stage_index", "stage",
    "mode", "percentage"}], "kill_switch": {"id", "engaged_earlier"}}`. The flag states it
    turned off are recorded once, in the audit trail: `states_event` is the
    `killswitch.engage` event of the same transaction, whose `before.states` hold each
    state as it was (append-only, so the snapshot a restore reads cannot be edited).
    `flag_states` reads them. (Rows written before that keep theirs in `snapshot.flags`.)"""

    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="+")
    kill_switch = models.OneToOneField(
        KillSwitch, on_delete=models.PROTECT, null=True, blank=True, related_name="rollback"
    )
    actor = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    reason = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    snapshot = models.JSONField(default=dict)
    states_event = models.ForeignKey(
        AuditEvent, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    restored_at = models.DateTimeField(null=True, blank=True)
    restored_by = models.ForeignKey(
        User, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    restore_request_id = models.PositiveBigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"rollback {self.pk} of {self.environment_id}"

    @cached_property
    def flag_states(self) -> list[dict[str, Any]]:
        """[{"flag", "before": {mode, percentage, allowlist, version}, "after_version"}], by
        flag key: each state the rollback turned off, as it was."""
        if "flags" in self.snapshot:
            return self.snapshot["flags"]
        if self.states_event_id is None:
            return []  # the kill switch was engaged earlier: nothing was turned off
        before = (
            AuditEvent.objects.filter(pk=self.states_event_id)
            .values_list("before", flat=True)
            .first()
        )
        return [
            {**item, "after_version": item["before"]["version"] + 1}
            for item in (before or {}).get("states", [])
        ]


class DeploymentKind(models.TextChoices):
    STANDARD = "standard"
    EMERGENCY = "emergency"


class DeploymentStatus(models.TextChoices):
    AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
    GO = "go", "Go"
    IN_PROGRESS = "in_progress", "In progress"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    ROLLED_BACK = "rolled_back", "Rolled back"
    REJECTED = "rejected", "Rejected"
    EXPIRED = "expired", "Expired"
    CANCELLED = "cancelled", "Cancelled"


class Deployment(models.Model):
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="+")
    service = models.CharField(max_length=100)
    version = models.CharField(max_length=100)
    commit = models.CharField(max_length=64, blank=True)
    commit_time = models.DateTimeField(null=True, blank=True)
    artifact = models.CharField(max_length=200, blank=True)
    kind = models.CharField(
        max_length=10, choices=DeploymentKind.choices, default=DeploymentKind.STANDARD
    )
    release = models.ForeignKey(
        Release, on_delete=models.SET_NULL, null=True, blank=True, related_name="deployments"
    )
    notes = models.TextField(blank=True)
    status = models.CharField(
        max_length=20, choices=DeploymentStatus.choices, default=DeploymentStatus.GO
    )
    approval_request_id = models.PositiveBigIntegerField(null=True, blank=True)
    requested_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    # The human whose execution of the approved request gave the go.
    executed_by = models.ForeignKey(
        User, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    emergency_confirmed_by = models.ForeignKey(
        User, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # The usernames whose gos approved the request, as read when the go was given.
    approved_by = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    go_at = models.DateTimeField(null=True, blank=True)
    go_expires_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    succeeded_at = models.DateTimeField(null=True, blank=True)
    rolled_back_at = models.DateTimeField(null=True, blank=True)
    smoke_passed = models.PositiveIntegerField(null=True, blank=True)
    smoke_failed = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["environment", "service", "created_at"], name="deploy_env_idx"),
            models.Index(fields=["environment", "status"], name="deploy_status_idx"),
            # DORA: successes per service, the latest success in an environment, outcomes.
            models.Index(
                fields=["environment", "service", "succeeded_at"], name="deploy_success_idx"
            ),
            models.Index(fields=["environment", "succeeded_at"], name="deploy_env_success_idx"),
            models.Index(fields=["environment", "finished_at"], name="deploy_finished_idx"),
            models.Index(fields=["environment", "rolled_back_at"], name="deploy_rolled_back_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.service} {self.version} to {self.environment.slug}"


class DeploymentEvent(models.Model):
    id = models.BigAutoField(primary_key=True)
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(default=timezone.now)
    event = models.CharField(max_length=20)
    detail = models.TextField(blank=True)
    smoke_tests = models.JSONField(null=True, blank=True)
    actor = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.event} at {self.at:%Y-%m-%d %H:%M:%S}"
