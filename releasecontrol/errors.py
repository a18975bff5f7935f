"""Errors every app may raise from a service, with the HTTP answer they map to."""

from __future__ import annotations

from typing import Any


class Conflict(Exception):
    """The change cannot be made as asked (answered 409): stale, killed, or needs approval."""

    code = "conflict"

    def __init__(self, detail: str, **context: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.context = context
