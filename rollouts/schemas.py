"""The releases and metrics API's request and response schemas (see rollouts/api.py).

Plans and gates are checked by rollouts/plans.py (errors name `plan.stages[1].percentage`,
`gates[0].threshold`), so their schemas here are only their JSON shape."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from flags.schemas import FlagKey
from releasecontrol.paging import PageQuery
from releasecontrol.schemas import MAX_INT32, MAX_INT64, Page, RequestBody, Timestamp

from .metrics import MAX_BATCH
from .models import Cohort, ReleaseStatus

StatusName = Literal[tuple(ReleaseStatus.values)]  # type: ignore[valid-type]
CohortName = Literal[tuple(Cohort.values)]  # type: ignore[valid-type]
Time = Annotated[
    AwareDatetime,
    Field(strict=False, description="ISO 8601 with its offset, e.g. 2026-12-01T10:00:00Z."),
]
ReasonText = Annotated[str | None, Field(max_length=2_000, description="Why, for the audit trail.")]
Slug = Annotated[str, StringConstraints(min_length=1, max_length=50)]
Number = Annotated[float, Field(allow_inf_nan=False, ge=-1e15, le=1e15)]
ReleaseId = Annotated[int, Field(strict=True, ge=1, le=MAX_INT64)]
PlanIn = Annotated[
    str | dict[str, Any],
    Field(
        description='A template ("five-stage", "progressive", "allowlist-percentage-full") or '
        '{"stages": [{"name", "mode", "percentage", "hold_seconds", "needs_go"}]}.',
        examples=["five-stage"],
    ),
]
GatesIn = Annotated[
    list[dict[str, Any]],
    Field(
        max_length=50,
        description="Each gate: name, metric, aggregate, comparator, threshold, "
        "window_seconds, min_samples, failures_to_act, no_data, on_failure, advisory, stage, "
        'source ("push" or {"prometheus": "<PromQL>"}), baseline.',
    ),
]


# --- Requests ---------------------------------------------------------------------------------


class ReleaseCreateIn(RequestBody):
    name: Annotated[str, StringConstraints(max_length=100)]
    version: Annotated[str, StringConstraints(max_length=64)] = ""
    environment: Slug
    flags: Annotated[list[FlagKey], Field(min_length=1, max_length=100)]
    plan: PlanIn
    gates: GatesIn
    allowlist: Annotated[list[str], Field(max_length=10_000)] = Field(default_factory=list)
    dead_man_seconds: Annotated[int, Field(ge=10, le=7 * 24 * 3600)] = 300
    reason: ReasonText = None


class ReleasePatchIn(RequestBody):
    name: Annotated[str, StringConstraints(max_length=100)] | None = None
    version: Annotated[str, StringConstraints(max_length=64)] | None = None
    flags: Annotated[list[FlagKey], Field(min_length=1, max_length=100)] | None = None
    plan: PlanIn | None = None
    gates: GatesIn | None = None
    allowlist: Annotated[list[str], Field(max_length=10_000)] | None = None
    dead_man_seconds: Annotated[int, Field(ge=10, le=7 * 24 * 3600)] | None = None
    reason: ReasonText = None


class ReasonIn(RequestBody):
    reason: ReasonText = None


class ReleaseListQuery(PageQuery):
    environment: str = Field("", max_length=50)
    status: StatusName | Literal[""] = ""


class SamplesQuery(PageQuery):
    metric: str = Field("", max_length=100)
    since: AwareDatetime | None = None


class SampleIn(RequestBody):
    environment: Slug
    release: ReleaseId | None = None
    flag: FlagKey | None = None
    metric: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    value: Number
    time: Time | None = None
    cohort: CohortName = "canary"
    total: Number | None = None


class MetricsIn(RequestBody):
    samples: Annotated[list[SampleIn], Field(min_length=1, max_length=MAX_BATCH)]


class IdCursor(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    id: int = Field(ge=1, le=MAX_INT64)


# --- Responses --------------------------------------------------------------------------------


class StageOut(BaseModel):
    index: int
    name: str
    mode: str
    percentage: int
    hold_seconds: int
    needs_go: bool


class CurrentStageOut(BaseModel):
    index: int
    name: str
    mode: str
    percentage: int


class EvaluationOut(BaseModel):
    id: int | None = None
    gate: str | None = None
    outcome: str
    value: float | None
    samples: int
    evaluated_at: Timestamp
    threshold: float | None = None
    window_start: Timestamp | None = None
    window_end: Timestamp | None = None
    source: str | None = None
    detail: str | None = None
    action: str | None = None


class GateOut(BaseModel):
    name: str
    metric: str
    aggregate: str
    comparator: str
    threshold: float
    window_seconds: int
    min_samples: int
    failures_to_act: int
    no_data: str
    on_failure: str
    advisory: bool
    stage: str | None
    source: str | dict[str, str]
    baseline: dict[str, Any] | None
    latest: EvaluationOut | None = Field(description="The latest evaluation, or null.")


class ReleaseOut(BaseModel):
    id: int
    name: str
    version: str
    environment: str
    flags: list[str]
    allowlist: list[str]
    plan_template: str
    status: str
    current_stage: CurrentStageOut | None
    stage_entered_at: Timestamp | None
    paused_reason: str
    revision: int = Field(le=MAX_INT32)
    requested_by: str
    approval: int | None = Field(description="The approved request it runs on, if any.")
    pending_request: int | None = Field(description="An open request for its next step.")
    dead_man_seconds: int
    stages: list[StageOut]
    gates: list[GateOut]
    created_at: Timestamp
    started_at: Timestamp | None
    ended_at: Timestamp | None


class ReleasePage(Page):
    items: list[ReleaseOut]


class EvaluationPage(Page):
    items: list[EvaluationOut]


class SampleOut(BaseModel):
    id: int
    metric: str
    cohort: str
    value: float
    total: float | None
    time: Timestamp
    submitted_by: str


class SamplePage(Page):
    items: list[SampleOut]


class AcceptedOut(BaseModel):
    accepted: int
