"""The emergency rollback endpoints' schemas (rollouts/emergency_api.py)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from flags.schemas import KillSwitchOut, StateValueOut, Text
from releasecontrol.schemas import RequestBody, Timestamp


class RollbackIn(RequestBody):
    reason: Text = Field(None, description="Why: required.")


class TurnedOffOut(BaseModel):
    flag: str
    before: StateValueOut


class SnapshotFlagOut(TurnedOffOut):
    after_version: int = Field(description="The state's version once turned off.")


class ReleaseStoppedOut(BaseModel):
    id: int
    name: str
    version: str
    status: str = Field(description="The release's status before the rollback.")
    stage_index: int | None
    stage: str | None
    mode: str | None
    percentage: int | None


class RollbackOut(BaseModel):
    rollback: int = Field(description="The rollback's id: GET /api/v1/rollbacks/{id}.")
    environment: str
    already_rolled_back: bool = Field(
        description="True when an earlier rollback already holds the environment: nothing "
        "changed, and `rollback` names that first one."
    )
    turned_off: list[TurnedOffOut]
    releases_stopped: list[ReleaseStoppedOut]
    kill_switch: KillSwitchOut | None
    snapshot_url: str
    detail: str


class SnapshotOut(BaseModel):
    flags: list[SnapshotFlagOut]
    releases: list[ReleaseStoppedOut]


class RestoreOut(BaseModel):
    restored_at: Timestamp | None
    restored_by: str | None
    request: int | None = Field(description="The executed rollback.restore request.")


class RollbackDetailOut(BaseModel):
    id: int
    environment: str
    actor: str
    reason: str
    created_at: Timestamp
    kill_switch: int | None
    kill_switch_engaged: bool
    snapshot: SnapshotOut
    restore: RestoreOut
    restore_request: dict[str, Any] = Field(
        description="The rollback.restore request to make (POST /api/v1/approvals) to release "
        "the kill switch and bring every flag of the snapshot back; choose fewer flags in "
        "`parameters.flags` to bring back only those."
    )
    state: Literal["engaged", "restored", "released"]
