"""The deployment and DORA API's request and response schemas (see rollouts/deployment_api.py)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from releasecontrol.paging import PageQuery
from releasecontrol.schemas import MAX_INT64, Page, RequestBody, Timestamp

from .deployment_input import MAX_DETAIL, MAX_NOTES, MAX_SMOKE
from .deployment_status import EVENTS
from .dora import MAX_DAYS
from .models import DeploymentKind, DeploymentStatus

KindName = Literal[tuple(DeploymentKind.values)]  # type: ignore[valid-type]
StatusName = Literal[tuple(DeploymentStatus.values)]  # type: ignore[valid-type]
EventName = Literal[EVENTS]  # type: ignore[valid-type]

Time = Annotated[
    AwareDatetime,
    Field(strict=False, description="ISO 8601 with its offset, e.g. 2026-12-01T08:12:00Z."),
]
Slug = Annotated[str, StringConstraints(min_length=1, max_length=50)]
ReasonText = Annotated[str | None, Field(max_length=2_000, description="Why, for the audit trail.")]
SmokeCount = Annotated[int, Field(ge=0, le=MAX_SMOKE)]


class DeploymentIn(RequestBody):
    environment: Slug = Field(examples=["production"])
    service: Annotated[str, StringConstraints(min_length=1, max_length=100)] = Field(
        examples=["checkout-api"], description="Letters, digits and . _ / -."
    )
    version: Annotated[str, StringConstraints(min_length=1, max_length=100)] = Field(
        examples=["2.4.0"]
    )
    commit: Annotated[str, StringConstraints(min_length=7, max_length=64)] = Field(
        examples=["9f1c2ab"], description="The commit hash (7 to 64 hexadecimal digits)."
    )
    commit_time: Time = Field(description="When the commit was made: lead time starts here.")
    artifact: Annotated[str, StringConstraints(min_length=1, max_length=200)] = Field(
        examples=["sha256:" + "0" * 64], description="The artifact's digest."
    )
    kind: KindName = Field(
        DeploymentKind.STANDARD.value,
        description="emergency: may skip staging; a person confirms it, one approver more.",
    )
    release: int | None = Field(
        None, ge=1, le=MAX_INT64, description="A release in the same environment to start."
    )
    checklist: Slug | None = Field(
        None,
        description="A checklist template's slug for the approval request; omitted: the "
        "environment's default.",
    )
    notes: Annotated[str | None, Field(max_length=MAX_NOTES)] = None
    reason: ReasonText = None


class SmokeTestsIn(RequestBody):
    passed: SmokeCount = 0
    failed: SmokeCount = 0


class DeploymentEventIn(RequestBody):
    event: EventName
    detail: Annotated[str | None, Field(max_length=MAX_DETAIL)] = None
    smoke_tests: SmokeTestsIn | None = None
    reason: ReasonText = None


class DeploymentCancelIn(RequestBody):
    reason: ReasonText = None


class DeploymentListQuery(PageQuery):
    environment: Annotated[str, StringConstraints(max_length=50)] | None = Field(
        None, description="An environment's slug; empty: every environment."
    )
    service: Annotated[str, StringConstraints(max_length=100)] | None = None
    status: StatusName | Literal[""] | None = Field(None, description="Empty: every status.")


class DeploymentCursor(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    id: int = Field(ge=1, le=MAX_INT64)


class SmokeTestsOut(BaseModel):
    passed: int
    failed: int


class DeploymentEventOut(BaseModel):
    at: Timestamp
    event: str
    detail: str
    smoke_tests: SmokeTestsOut | None
    actor: str


class DeploymentOut(BaseModel):
    id: int
    environment: str
    service: str
    version: str
    commit: str
    commit_time: Timestamp | None
    artifact: str
    kind: KindName
    release: int | None
    notes: str
    status: StatusName = Field(description="Deploy only on go.")
    approval: int | None = Field(description="The deployment.execute request's id.")
    requested_by: str
    approved_by: list[str]
    executed_by: str | None = Field(description="Who gave the go.")
    emergency_confirmed_by: str | None
    created_at: Timestamp
    go_at: Timestamp | None
    go_expires_at: Timestamp | None = Field(description="Start before this, or the go expires.")
    started_at: Timestamp | None
    finished_at: Timestamp | None
    succeeded_at: Timestamp | None
    rolled_back_at: Timestamp | None
    smoke_tests: SmokeTestsOut | None
    retry_after: int | None = Field(
        description="Seconds before asking again (also the Retry-After header) while awaiting "
        "approval or holding a go not started; null otherwise."
    )
    events: list[DeploymentEventOut]


class DeploymentPage(Page):
    items: list[DeploymentOut]


class DoraQuery(BaseModel):
    environment: Annotated[str, StringConstraints(max_length=50)] | None = Field(
        None, description="An environment's slug; empty: every environment."
    )
    service: Annotated[str, StringConstraints(max_length=100)] | None = Field(
        None, description="A service; empty: every service."
    )
    days: int = Field(30, ge=1, le=MAX_DAYS, description="The period: the last N days.")


class LeadTimeOut(BaseModel):
    p50: float | None
    p90: float | None


class RecoveryOut(BaseModel):
    p50: float | None


class DoraCountsOut(BaseModel):
    successes: int = Field(description="Deployments that succeeded in the period.")
    lead_time_samples: int
    changes: int = Field(description="Deployments that reached an outcome in the period.")
    change_failures: int
    failed_or_rolled_back: int
    gate_rollbacks: int
    emergency_rollbacks: int
    failures: int = Field(description="Failed or rolled-back deployments in the period.")
    recovered: int
    unrecovered: int


class DoraWeekOut(BaseModel):
    week: str = Field(description="The Monday the week starts, YYYY-MM-DD.")
    deployment_frequency_per_day: float
    lead_time_hours_p50: float | None
    change_failure_rate: float | None
    recovery_time_hours_p50: float | None
    successes: int
    changes: int
    change_failures: int


class DoraOut(BaseModel):
    environment: str | None
    service: str | None
    days: int
    start: Timestamp
    end: Timestamp
    change_failure_window_hours: float
    deployment_frequency_per_day: float
    lead_time_hours: LeadTimeOut
    change_failure_rate: float | None
    recovery_time_hours: RecoveryOut
    counts: DoraCountsOut
    weeks: list[DoraWeekOut]
