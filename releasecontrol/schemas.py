"""Request and response schemas every app's API uses: errors, timestamps, pages, the account.

Request bodies are strict (a string is not a number, `true` is not 1) and refuse unknown
fields, so a typo is a 400 naming it rather than a silently ignored field.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from ninja import Header
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

# Times as Python writes them (ISO 8601 with microseconds and the UTC offset).
Timestamp = Annotated[
    dt.datetime, PlainSerializer(lambda value: value.isoformat(), return_type=str)
]
# What PostgreSQL's integer columns hold: larger numbers are refused, not overflowed.
MAX_INT32 = 2**31 - 1
MAX_INT64 = 2**63 - 1
Version = Annotated[
    int,
    Field(
        strict=True,
        ge=1,
        le=MAX_INT32,
        description="The state's version as you read it (GET it first): a stale one is 409.",
    ),
]
IDEMPOTENCY_KEY_MAX_LENGTH = 200
# The optional header of every creating POST (releasecontrol/idempotency.py).
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=IDEMPOTENCY_KEY_MAX_LENGTH,
        description="Retry safely: the same key and body answer the first result again.",
    ),
]


class RequestBody(BaseModel):
    """A JSON object body: strict types, no unknown fields."""

    model_config = ConfigDict(extra="forbid", strict=True)


class ErrorOut(BaseModel):
    error: str = Field(description="A stable code, e.g. invalid, forbidden, stale.")
    detail: str = Field(description="What went wrong and what to do about it.")


class ConflictOut(ErrorOut):
    """409: the change cannot be made as asked. A stale edit also says who changed the state
    and what it is now, so the caller can decide again without reading it."""

    model_config = ConfigDict(extra="allow")


def errors(*statuses: int) -> dict[int, type[BaseModel]]:
    """The error answers an operation documents: {400: ErrorOut, 409: ConflictOut, ...}."""
    return {status: ConflictOut if status == 409 else ErrorOut for status in statuses}


ERRORS_READ = errors(401)


class Page(BaseModel):
    next: str | None = Field(
        description="Pass as ?cursor= for the next page; null on the last page."
    )


class RoleOut(BaseModel):
    role: str
    environment: str


class MeOut(BaseModel):
    username: str
    kind: str = Field(description="human or agent")
    roles: list[RoleOut]


def strip_none(values: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}
