"""Listeners to flag state changes, for apps that build on flags (flags imports none of them).

An app registers a callable in its AppConfig.ready(); `flag_state_set` runs every listener
inside its transaction, after the change is saved and audited, with
`(actor, flag, environment, before, after, reason, origin)`: `before` and `after` are the
StateValues, `origin` what the caller said drove the change ("" for a person's direct
change, "release:12" for a release's stage). A listener that raises undoes the change.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

StateListener = Callable[..., Any]

_LISTENERS: list[StateListener] = []


def state_listener_add(listener: StateListener) -> None:
    if listener not in _LISTENERS:
        _LISTENERS.append(listener)


def state_listener_remove(listener: StateListener) -> None:
    if listener in _LISTENERS:
        _LISTENERS.remove(listener)


def state_changed(**change: Any) -> None:
    """Called by flag_state_set inside its transaction."""
    for listener in list(_LISTENERS):
        listener(**change)
