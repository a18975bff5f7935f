"""The approvals API's request and response schemas (see approvals/api.py)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from releasecontrol.paging import PageQuery
from releasecontrol.schemas import MAX_INT64, Page, RequestBody, Timestamp

from .blackouts import DAY_NAMES
from .models import BlackoutKind, DecisionKind, Risk, Status, Urgency

StatusName = Literal[tuple(Status.values)]  # type: ignore[valid-type]
UrgencyName = Literal[tuple(Urgency.values)]  # type: ignore[valid-type]
RiskName = Literal[tuple(Risk.values)]  # type: ignore[valid-type]
DecisionName = Literal[tuple(DecisionKind.values)]  # type: ignore[valid-type]
DayName = Literal[tuple(DAY_NAMES)]  # type: ignore[valid-type]
KindName = Literal[tuple(BlackoutKind.values)]  # type: ignore[valid-type]

# JSON has no time type: an ISO 8601 text with its offset is the one accepted form.
Time = Annotated[
    AwareDatetime,
    Field(strict=False, description="ISO 8601 with its offset, e.g. 2026-12-02T09:00:00Z."),
]
ClockTime = Annotated[
    str,
    StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$"),
    Field(description="HH:MM, a wall-clock time in the window's time zone."),
]
Slug = Annotated[str, StringConstraints(min_length=1, max_length=50)]
Text = Annotated[str | None, Field(max_length=10_000, description="Omitted or null: empty.")]
ReasonText = Annotated[str | None, Field(max_length=2_000, description="Why, for the audit trail.")]
Parameters = Annotated[
    dict[str, Any],
    Field(description="The action's parameters, checked against its registered schema."),
]


class WindowIn(RequestBody):
    start: Time
    end: Time


class ApprovalCreateIn(RequestBody):
    environment: Slug = Field(examples=["production"])
    action: Annotated[str, StringConstraints(min_length=1, max_length=100)] = Field(
        description="A requestable action, e.g. flag.state.set.", examples=["flag.state.set"]
    )
    parameters: Parameters
    title: Annotated[str, StringConstraints(max_length=200)]
    urgency: UrgencyName = Field(
        Urgency.ROUTINE.value, description="An emergency counts only once a person declares it."
    )
    risk: RiskName = Risk.MEDIUM.value
    impact: Text = None
    mitigation: Text = None
    rollback_plan: Text = None
    window: WindowIn | None = Field(None, description="When it should be executed.")
    alternative_window: WindowIn | None = None
    checklist: Slug | None = Field(
        None,
        description="A checklist template's slug; omitted: the environment's default; \"none\" "
        "where the environment allows requests without one.",
    )
    reason: ReasonText = None


class ApprovalPatchIn(RequestBody):
    """Any field of the request or its parameters: a new revision that voids earlier gos.
    Omitted fields keep their values; a window sent as null is removed."""

    title: Annotated[str, StringConstraints(max_length=200)] | None = None
    urgency: UrgencyName | None = None
    risk: RiskName | None = None
    impact: Text = None
    mitigation: Text = None
    rollback_plan: Text = None
    window: WindowIn | None = None
    alternative_window: WindowIn | None = None
    parameters: Parameters | None = None
    reason: ReasonText = None


class ChecklistItemPatchIn(RequestBody):
    checked: bool | None = Field(None, description="Omitted: unchanged.")
    evidence: Annotated[str, StringConstraints(max_length=2000)] | None = Field(
        None, description="Text, or an http(s) link (e.g. a CI run). Omitted: unchanged."
    )
    reason: ReasonText = None


class DecisionIn(RequestBody):
    decision: DecisionName
    comment: Text = Field(None, description="Required for adjust and no_go: say what or why.")
    preview_hash: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(
        description="The request's preview_hash as you read it: a stale one is 409."
    )
    reason: ReasonText = None


class ExecuteIn(RequestBody):
    reason: ReasonText = Field(None, description="Why it is executed now: required.")


class CancelIn(RequestBody):
    reason: ReasonText = None


class PostReviewIn(RequestBody):
    notes: Text = Field(None, description="What the review found: required.")


class ApprovalListQuery(PageQuery):
    status: StatusName | Literal[""] | None = Field(None, description="Empty: every status.")
    environment: Annotated[str, StringConstraints(max_length=50)] | None = Field(
        None, description="An environment's slug; empty: every environment."
    )


class IdCursor(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    id: int = Field(ge=1, le=MAX_INT64)


class WeeklyIn(RequestBody):
    day: DayName
    start: ClockTime
    end_day: DayName | None = Field(None, description="Omitted: the same day as `day`.")
    end: ClockTime


class BlackoutCreateIn(RequestBody):
    """One-off (`starts_at`, `ends_at`) or weekly (`weekly` in `time_zone`)."""

    starts_at: Time | None = None
    ends_at: Time | None = None
    weekly: WeeklyIn | None = None
    time_zone: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(
        "UTC", description="Of a weekly window, e.g. Europe/Berlin."
    )
    reason: ReasonText = Field(None, description="Why nothing may increase exposure then.")


class BlackoutDeleteQuery(BaseModel):
    reason: str = Field("", max_length=2_000, description="Why, for the audit trail.")


# --- Responses --------------------------------------------------------------------------------


class WindowOut(BaseModel):
    start: Timestamp
    end: Timestamp


class ChecklistItemOut(BaseModel):
    id: int
    section: str
    text: str
    required: bool
    evidence_required: bool
    checked: bool
    checked_by: str | None
    checked_at: Timestamp | None
    evidence: str


class DecisionOut(BaseModel):
    id: int
    decision: DecisionName
    decider: str
    comment: str
    revision: int
    preview_hash: str
    created_at: Timestamp
    void: bool = Field(description="Voided by a later revision: kept, no longer counted.")


class PostReviewOut(BaseModel):
    opened_at: Timestamp
    closed_at: Timestamp | None
    closed_by: str | None
    notes: str


class ApprovalOut(BaseModel):
    id: int
    status: StatusName
    environment: str
    action: str
    parameters: dict[str, Any]
    title: str
    urgency: UrgencyName
    risk: RiskName
    impact: str
    mitigation: str
    rollback_plan: str
    window: WindowOut | None
    alternative_window: WindowOut | None
    revision: int
    preview: dict[str, Any] = Field(
        description="Exactly what executing would change: before and after of each item."
    )
    preview_hash: str = Field(description="Send it with a decision: it names this revision.")
    approvals_required: int = Field(description="Valid gos needed now.")
    approvals: list[DecisionOut] = Field(description="The valid gos of this revision.")
    decisions: list[DecisionOut] = Field(description="Every decision, void ones included.")
    checklist: list[ChecklistItemOut]
    checklist_template: str | None
    requested_by: str
    emergency_confirmed_by: str | None
    created_at: Timestamp
    updated_at: Timestamp
    expires_at: Timestamp
    approved_at: Timestamp | None
    executed_at: Timestamp | None
    executed_by: str | None
    result: Any = Field(description="What executing it changed; null until then.")
    suspended_reason: str
    post_review: PostReviewOut | None


class ApprovalPage(Page):
    items: list[ApprovalOut]


class WeeklyOut(BaseModel):
    day: DayName
    start: str
    end_day: DayName
    end: str


class BlackoutOut(BaseModel):
    id: int
    environment: str
    kind: KindName
    reason: str
    starts_at: Timestamp | None
    ends_at: Timestamp | None
    weekly: WeeklyOut | None
    time_zone: str
    open_now: bool = Field(description="Whether the window is open at this moment.")
    created_by: str
    created_at: Timestamp
    deleted_at: Timestamp | None = Field(description="Set once removed: it holds no more.")
    deleted_by: str | None


class BlackoutPage(Page):
    items: list[BlackoutOut]


class TemplateItemOut(BaseModel):
    section: str
    text: str
    required: bool
    evidence_required: bool


class ChecklistTemplateOut(BaseModel):
    slug: str
    name: str
    description: str
    items: list[TemplateItemOut]


class ChecklistTemplatePage(Page):
    items: list[ChecklistTemplateOut]


class SlugCursor(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    slug: str = Field(max_length=50)
