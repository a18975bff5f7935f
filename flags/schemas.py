"""The flags API's request and response schemas (see flags/api.py)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic_core import PydanticCustomError

from releasecontrol.paging import PageQuery
from releasecontrol.schemas import (
    MAX_INT64,
    ConflictOut,
    Page,
    RequestBody,
    Timestamp,
    Version,
)

from .models import FLAG_KEY_HELP, FLAG_KEY_PATTERN, FlagType, Mode


def _flag_key_error(value: Any, handler: ValidatorFunctionWrapHandler) -> str:
    try:
        return handler(value)
    except ValidationError as error:
        if any(e["type"] == "string_pattern_mismatch" for e in error.errors()):
            raise PydanticCustomError(
                "flag_key", f"not a flag key: {FLAG_KEY_HELP} At most 100 characters."
            ) from None
        raise


FlagKey = Annotated[
    str,
    StringConstraints(pattern=FLAG_KEY_PATTERN),
    WrapValidator(_flag_key_error),
    Field(description=f"The flag's key, e.g. new-checkout. {FLAG_KEY_HELP}"),
]
ModeName = Literal[tuple(Mode.values)]  # type: ignore[valid-type]
TypeName = Literal[tuple(FlagType.values)]  # type: ignore[valid-type]
TagName = Annotated[
    str,
    StringConstraints(pattern=r"^[-A-Za-z0-9_]{1,50}$"),
    Field(description="Letters, digits, hyphen, underscore; kept in lower case."),
]
Percentage = Annotated[int, Field(strict=True, ge=0, le=100)]
Text = Annotated[str | None, Field(description="Omitted or null: empty.")]
JsonValue = Annotated[Any, Field(description="Any JSON value of the flag's type.")]


# --- Requests ---------------------------------------------------------------------------------


class FlagListQuery(PageQuery):
    search: str = Field("", max_length=200, description="In key, name or description.")
    tag: str = Field("", max_length=50, description="Only flags with this tag.")


class HistoryQuery(PageQuery):
    environment: str = Field("", max_length=50, description="Only events in this environment.")


class FlagCreateIn(RequestBody):
    key: FlagKey
    name: Text = Field(None, description="Defaults to the key.")
    description: Text = None
    tags: list[TagName] = Field(default_factory=list, examples=[["payments"]])
    type: TypeName = "boolean"
    on_value: JsonValue = Field(
        None, description="What the flag serves when on. Booleans: true; others: required."
    )
    off_value: JsonValue = Field(
        None,
        description="What the flag serves when off (every kill switch serves it). "
        "Booleans: false; others: required.",
    )


class StatePatchIn(RequestBody):
    """Omitted or null fields keep their values; `version` is the one you read."""

    mode: ModeName | None = None
    percentage: Percentage | None = None
    allowlist: list[str] | None = Field(None, description="Targeting keys that get the on-value.")
    version: Version
    reason: Text = Field(None, description="Why: required in production.")


class RestoreIn(RequestBody):
    event_id: int = Field(
        strict=True, ge=1, le=MAX_INT64, description="An audit event id from the flag's history."
    )
    side: Literal["", "before", "after"] | None = Field(
        None, description='Of a change: its "after" (the default) or its "before".'
    )
    version: Annotated[Version | None, Field(description="The state's version as you read it.")] = (
        None
    )
    reason: Text = Field(None, description="Why: required in production.")


class AcceptIn(RequestBody):
    """Accept exactly the flag's on- and off-value as they are now: answered 409 with the
    `flag.accept` request to make, as values are accepted only through an approved one."""

    version: Version
    reason: Text = Field(None, description="Why these values are right here: required.")


class FlagCursor(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    key: FlagKey


class EventCursor(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    id: int = Field(ge=1, le=MAX_INT64)


# --- Responses --------------------------------------------------------------------------------


class StateValueOut(BaseModel):
    mode: ModeName
    percentage: int
    allowlist: list[str]
    version: int


class StateOut(StateValueOut):
    updated_at: Timestamp | None
    updated_by: str | None


class KillSwitchOut(BaseModel):
    id: int
    scope: Literal["flag", "tag", "environment"]
    subject: str
    engaged_at: Timestamp
    engaged_by: str
    reason: str


class FlagEnvironmentOut(StateOut):
    kill_switch: KillSwitchOut | None = Field(
        description="The engaged kill switch covering the flag here (an increase is 409)."
    )
    values_served: bool = Field(
        description="False while a non-boolean flag's values wait for acceptance here: "
        "evaluation answers FLAG_NOT_FOUND until an approved `flag.accept` request is "
        "executed (POST /api/v1/approvals)."
    )


class FlagOut(BaseModel):
    key: str
    name: str
    description: str
    tags: list[str]
    type: TypeName
    on_value: Any
    off_value: Any
    archived: bool
    owner: str | None
    created_at: Timestamp
    environments: dict[str, FlagEnvironmentOut] = Field(
        description="The flag's state in every environment, by slug, in promotion order."
    )


class FlagPage(Page):
    items: list[FlagOut]


class ChangedStateOut(StateOut):
    flag: str
    environment: str


class RestoredStateOut(ChangedStateOut):
    restored_from: int = Field(description="The audit event the state came from.")


class EventOut(BaseModel):
    id: int
    created_at: Timestamp
    actor: str
    actor_kind: str
    action: str
    outcome: str
    environment: str | None
    before: Any
    after: Any
    reason: str


class EventPage(Page):
    items: list[EventOut]


class RequestToMake(BaseModel):
    """The change to ask approval for: the body's action, environment and parameters for
    POST /api/v1/approvals (title, urgency, risk and the rest are the requester's)."""

    action: str = Field(examples=["flag.state.set"])
    environment: str = Field(examples=["production"])
    parameters: dict[str, Any] = Field(
        examples=[{"flag": "new-checkout", "mode": "percentage", "percentage": 10, "allowlist": []}]
    )


class ChangeConflictOut(ConflictOut):
    """409 on a flag change: `stale` (with the current state and who changed it),
    `kill_switch_engaged`, `blackout` (the window, and when it ends), or `approval_required`
    with `request`: the request to make instead, through POST /api/v1/approvals."""

    request: RequestToMake | None = Field(
        None, description="approval_required only: the request to make."
    )
