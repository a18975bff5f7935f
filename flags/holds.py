"""What another app plugs into flags' kill switches (flags imports no such app):

- the environment-wide off button: the one service every "every flag off" entry point of
  flags calls (the board's environment kill switch); rollouts installs its emergency
  rollback, which engages the environment kill switch and also stops live releases;
- holds: a kill switch that only a request releases (an emergency rollback's is released
  only by executing a `rollback.restore` request). The hold names the request to make;
- covering approvals: an approved composite request (`rollback.restore`) whose preview
  lists a flag change or a switch release lets that change through, once its owner has
  verified it in the same transaction.

Each slot is filled once, from the owning app's AppConfig.ready().
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.core.exceptions import ImproperlyConfigured

from releasecontrol.errors import Conflict
from releasecontrol.models import Environment, User
from releasecontrol.requestable import VerifiedApproval

from .models import KillSwitch

# --- The environment-wide off button ----------------------------------------------------------


class EnvironmentRollbackResult(Protocol):
    """What an off button shows after the press."""

    already: bool
    turned_off: list[dict[str, Any]]
    releases_stopped: list[dict[str, Any]]

    @property
    def rollback_id(self) -> int: ...

    @property
    def link(self) -> str: ...


EnvironmentRollback = Callable[..., EnvironmentRollbackResult]
_environment_rollback: EnvironmentRollback | None = None


def environment_rollback_install(service: EnvironmentRollback) -> None:
    global _environment_rollback
    if _environment_rollback is not None and _environment_rollback is not service:
        raise ImproperlyConfigured("An environment rollback service is already installed")
    _environment_rollback = service


def environment_rollback(
    *, actor: User, environment: Environment, reason: str
) -> EnvironmentRollbackResult:
    """Every flag in the environment off, and whatever else the installed service stops."""
    if _environment_rollback is None:
        raise ImproperlyConfigured("No environment rollback service is installed")
    return _environment_rollback(actor=actor, environment=environment, reason=reason)


# --- Holds -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hold:
    """Why a switch is released only through a request, and the request to make."""

    action: str
    detail: str
    request: dict[str, Any] = field(default_factory=dict)
    # The request the switch may be released by now (an approved one being executed).
    releasable_by: int | None = None


class KillSwitchHeld(Conflict):
    code = "kill_switch_held"


_hold_lookup: Callable[[KillSwitch], Hold | None] | None = None


def hold_lookup_install(lookup: Callable[[KillSwitch], Hold | None]) -> None:
    global _hold_lookup
    if _hold_lookup is not None and _hold_lookup is not lookup:
        raise ImproperlyConfigured("A kill switch hold lookup is already installed")
    _hold_lookup = lookup


def kill_switch_hold(switch: KillSwitch | None) -> Hold | None:
    if switch is None or _hold_lookup is None:
        return None
    return _hold_lookup(switch)


def held(hold: Hold) -> KillSwitchHeld:
    return KillSwitchHeld(hold.detail, request=hold.request)


# --- Covering approvals -----------------------------------------------------------------------

# approval, environment, the change's type ("flag_state", "kill_switch"), its id
# ("key@environment", the switch's pk) and its "after" -> whether the approval covers it.
Cover = Callable[[VerifiedApproval, Environment, str, str, dict[str, Any]], bool]
_covers: dict[str, Cover] = {}


def approval_cover_install(action: str, cover: Cover) -> None:
    if _covers.get(action, cover) is not cover:
        raise ImproperlyConfigured(f"A cover for {action!r} is already installed")
    _covers[action] = cover


def approval_covering(approval: Any, action: str) -> bool:
    """Whether `approval` is a verified approval of another, composite action."""
    return (
        isinstance(approval, VerifiedApproval)
        and approval.action != action
        and approval.action in _covers
    )


def approval_covers(
    approval: VerifiedApproval,
    environment: Environment,
    item_type: str,
    item_id: str,
    after: dict[str, Any],
) -> bool:
    cover = _covers.get(approval.action)
    return (
        cover is not None
        and approval.environment_id == environment.pk
        and cover(approval, environment, item_type, item_id, after)
    )
