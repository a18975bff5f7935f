"""Who asked, from where: the request id and client address that audit events carry."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass


@dataclass(frozen=True)
class RequestContext:
    request_id: str = ""
    client_ip: str | None = None


_NONE = RequestContext()
_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "request_context", default=None
)


def current_request_context() -> RequestContext:
    return _current.get() or _NONE


def set_request_context(context: RequestContext) -> contextvars.Token:
    return _current.set(context)


def reset_request_context(token: contextvars.Token) -> None:
    _current.reset(token)
