"""Keyset paging for every API list: `?limit=` (default 50, at most 500) and `?cursor=`,
answering {"items": [...], "next": cursor or null}.

A cursor is opaque to callers: the position after the last item given out (base64 of a small
JSON object). Keyset, not offset: a page costs the same wherever it is, and items added
meanwhile are neither skipped nor repeated.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import TypeVar

from django.core.exceptions import ValidationError
from pydantic import BaseModel, Field

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_CURSOR_LENGTH = 400

T = TypeVar("T")
P = TypeVar("P", bound=BaseModel)


class PageQuery(BaseModel):
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="Items per page.")
    cursor: str | None = Field(
        None,
        max_length=MAX_CURSOR_LENGTH,
        description="The `next` of the previous page; omit it for the first page.",
    )


def cursor_encode(position: BaseModel) -> str:
    raw = position.model_dump_json().encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def cursor_decode(cursor: str | None, position: type[P]) -> P | None:
    """The position a cursor names (None for the first page), checked against the list's
    `position` model; a cursor this list did not give out is a 400."""
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return position.model_validate_json(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error):  # pydantic's ValidationError included
        raise ValidationError(
            {"cursor": "not a cursor this list gave out: pass a page's `next` unchanged."}
        ) from None


def page(
    rows: Sequence[T], limit: int, position_of: Callable[[T], BaseModel]
) -> tuple[list[T], str | None]:
    """`rows` fetched with limit + 1: the page and the cursor after it (None on the last)."""
    items = list(rows[:limit])
    more = len(rows) > limit
    return items, cursor_encode(position_of(items[-1])) if more and items else None
