"""Requestable actions and the approval verifier: how an app's change waits for people's go.

The app that owns an action registers it here (like the policy's action registry):

- `name`: the policy action it executes (`flag.state.set`), already registered there;
- `parameters`: a callable turning raw parameters into clean ones, or a pydantic model,
  raising ValidationError naming the fields;
- `preview(environment, parameters) -> dict`: exactly what executing would change,
  `{"items": [{"type", "id", "name", "before": {..., "version"}, "after": {...}}],
  "reduces_exposure": bool}`;
- `executor(*, actor, environment, parameters, approval, reason)`: calls the app's ordinary
  service, which re-verifies `approval` through `approval_verify` in its own transaction;
- `schedulable`: whether the system actor may execute an approved request at its window.

The app that holds the requests (approvals) plugs its verifier into the slot below, so an
owning app re-verifies an approval without importing it; it plugs in the blackout windows'
lookup the same way. Core imports no app.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Protocol

from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import connection
from django.utils import timezone

from . import policy
from .errors import Conflict
from .models import Environment, User


class ApprovalInvalid(Conflict):
    """The approval named does not cover this change now (answered 409)."""

    code = "approval_invalid"


class ApprovalDrifted(ApprovalInvalid):
    """What the approval's preview said would change is no longer the current state."""

    code = "drifted"


@dataclass(frozen=True, kw_only=True)
class Requestable:
    name: str
    parameters: Callable[[Mapping[str, Any]], dict[str, Any]] | type
    preview: Callable[[Environment, dict[str, Any]], dict[str, Any]]
    executor: Callable[..., Any]
    schedulable: bool

    def __post_init__(self) -> None:
        if not isinstance(self.schedulable, bool):
            raise ImproperlyConfigured(f"Requestable {self.name!r}: schedulable must be a bool")
        for attribute in ("parameters", "preview", "executor"):
            if not callable(getattr(self, attribute)):
                raise ImproperlyConfigured(
                    f"Requestable {self.name!r}: {attribute} must be callable"
                )

    @property
    def policy_action(self) -> policy.Action:
        return policy.get_action(self.name)


_REGISTRY: dict[str, Requestable] = {}


def register(**attributes: Any) -> Requestable:
    """Register a requestable action; missing or unknown attributes fail at import time."""
    expected = {f.name for f in fields(Requestable)}
    missing = expected - attributes.keys()
    unknown = attributes.keys() - expected
    if missing or unknown:
        raise ImproperlyConfigured(
            f"Requestable {attributes.get('name', '?')!r} must declare exactly its attributes: "
            f"missing {sorted(missing)}, unknown {sorted(unknown)}"
        )
    requestable = Requestable(**attributes)
    policy.get_action(requestable.name)  # only an action the policy knows can be requested
    if requestable.name in _REGISTRY and _REGISTRY[requestable.name] != requestable:
        raise ImproperlyConfigured(f"Requestable {requestable.name!r} is registered twice")
    _REGISTRY[requestable.name] = requestable
    return requestable


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def registered() -> list[Requestable]:
    return sorted(_REGISTRY.values(), key=lambda r: r.name)


def get(name: str) -> Requestable:
    """The requestable action by name; an unknown one is the caller's input error."""
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(r.name for r in registered()) or "none"
        raise ValidationError(
            {"action": f"{name!r} cannot be requested (requestable actions: {known})."}
        ) from None


def parameters_clean(name: str, raw: Any) -> dict[str, Any]:
    """Clean parameters through the action's validator; errors name the fields."""
    requestable = get(name)
    if not isinstance(raw, Mapping):
        raise ValidationError({"parameters": "Parameters are an object of named values."})
    validator = requestable.parameters
    if isinstance(validator, type) and hasattr(validator, "model_validate"):
        import pydantic

        try:
            model = validator.model_validate(dict(raw))
        except pydantic.ValidationError as error:
            raise ValidationError(
                {
                    ".".join(str(p) for p in e["loc"]) or "parameters": e["msg"]
                    for e in error.errors()
                }
            ) from None
        return model.model_dump(mode="json")
    return dict(validator(raw))


def preview_compute(name: str, environment: Environment, parameters: dict[str, Any]) -> dict:
    """The registered preview, checked for the shape every reader relies on."""
    preview = get(name).preview(environment, parameters)
    items = preview.get("items") if isinstance(preview, dict) else None
    if not isinstance(items, list) or not isinstance(preview.get("reduces_exposure"), bool):
        raise ImproperlyConfigured(
            f"The preview of {name!r} must be {{'items': [...], 'reduces_exposure': bool}}"
        )
    for item in items:
        if not isinstance(item, dict) or not {"type", "id", "before", "after"} <= item.keys():
            raise ImproperlyConfigured(
                f"Each item of the preview of {name!r} names type, id, before and after"
            )
    return preview


def preview_drift(approved: dict, current: dict) -> list[str]:
    """What differs between the approved preview's "before" and the current one, per item."""

    def befores(preview: dict) -> dict[tuple[str, str], tuple[str, Any]]:
        return {
            (str(i["type"]), str(i["id"])): (str(i.get("name") or i["id"]), i["before"])
            for i in preview.get("items", [])
        }

    was, now = befores(approved), befores(current)
    changes = []
    for key in sorted(was.keys() | now.keys()):
        if key not in now:
            changes.append(f"{was[key][0]}: no longer affected")
        elif key not in was:
            changes.append(f"{now[key][0]}: now affected too")
        elif was[key][1] != now[key][1]:
            old, new = was[key][1] or {}, now[key][1] or {}
            fields_changed = [
                f"{field} {old.get(field)!r} -> {new.get(field)!r}"
                for field in sorted(set(old) | set(new))
                if old.get(field) != new.get(field)
            ]
            changes.append(f"{now[key][0]}: {', '.join(fields_changed)}")
    return changes


# --- The verifier slot ------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ApprovalFacts:
    """What the verifier read from the approved request, in the caller's transaction."""

    request_id: int
    revision: int
    approvers: tuple[User, ...]
    urgency: str
    preview: dict[str, Any]
    preview_hash: str


_SEAL = object()


@dataclass(frozen=True, kw_only=True)
class VerifiedApproval:
    """An approval the verifier re-read and found valid, minted only by `approval_verify`.

    Services never trust one they are handed: they pass it (or a request id) back to
    `approval_verify` inside their own transaction and use what that returns.
    """

    request_id: int
    revision: int
    approvers: tuple[User, ...]
    urgency: str
    preview: dict[str, Any]
    preview_hash: str
    action: str
    environment_id: int
    _seal: object = None

    def __post_init__(self) -> None:
        if self._seal is not _SEAL:
            raise TypeError("A VerifiedApproval comes only from requestable.approval_verify().")

    @property
    def first_approver(self) -> User:
        return self.approvers[0]

    def audit_link(self) -> dict[str, Any]:
        """What the change's audit event records about the approval behind it."""
        return {
            "request": self.request_id,
            "revision": self.revision,
            "approvers": [u.get_username() for u in self.approvers],
            "urgency": self.urgency,
            "preview_hash": self.preview_hash,
        }


class Verifier(Protocol):
    def __call__(
        self,
        request_id: int,
        *,
        action: str,
        environment: Environment,
        parameters: dict[str, Any],
    ) -> ApprovalFacts: ...


_verifier: Verifier | None = None


def verifier_install(verifier: Verifier) -> None:
    """Plug in the one verifier (approvals does, in its AppConfig.ready())."""
    global _verifier
    if _verifier is not None and _verifier is not verifier:
        raise ImproperlyConfigured("An approval verifier is already installed")
    _verifier = verifier


def approval_verify(
    approval: VerifiedApproval | int,
    *,
    action: str,
    environment: Environment,
    parameters: Mapping[str, Any],
) -> VerifiedApproval:
    """Re-read the approval in the caller's transaction: approved, unexpired, the same
    action, environment and parameters it was approved for, and no drift from its preview.

    Raises ApprovalInvalid (409), or ApprovalDrifted naming what changed.
    """
    if _verifier is None:
        raise ImproperlyConfigured("No approval verifier is installed")
    if not connection.in_atomic_block:
        raise RuntimeError("approval_verify runs inside the transaction that makes the change")
    request_id = approval.request_id if isinstance(approval, VerifiedApproval) else approval
    if isinstance(request_id, bool) or not isinstance(request_id, int):
        raise TypeError("An approval is a VerifiedApproval or a request id")
    clean = parameters_clean(action, parameters)
    facts = _verifier(request_id, action=action, environment=environment, parameters=clean)
    if facts.request_id != request_id or not facts.approvers:
        raise ApprovalInvalid(f"Request {request_id} has no valid approval.")
    return VerifiedApproval(
        request_id=facts.request_id,
        revision=facts.revision,
        approvers=tuple(facts.approvers),
        urgency=facts.urgency,
        preview=facts.preview,
        preview_hash=facts.preview_hash,
        action=action,
        environment_id=environment.pk,
        _seal=_SEAL,
    )


# --- The blackout slot -------------------------------------------------------------------
# Inside a blackout window nothing increases exposure in that environment, direct changes
# included, except through an approved emergency request (VerifiedApproval.urgency). An
# owning app asks here, without importing the app that keeps the windows.

_blackout_lookup: Callable[[Environment, dt.datetime], str | None] | None = None


def blackout_lookup_install(lookup: Callable[[Environment, dt.datetime], str | None]) -> None:
    global _blackout_lookup
    if _blackout_lookup is not None and _blackout_lookup is not lookup:
        raise ImproperlyConfigured("A blackout lookup is already installed")
    _blackout_lookup = lookup


def blackout_now(environment: Environment, at: dt.datetime | None = None) -> str | None:
    """What blackout window is open in this environment now (a sentence), or None."""
    if _blackout_lookup is None:
        return None
    return _blackout_lookup(environment, at or timezone.now())


# --- Request lifecycle listeners ----------------------------------------------------------
# The app that owns an action may need to know when a request for it is opened or closes
# without being executed (a release waits for its start request, and goes back to draft when
# that request is rejected, expires or is cancelled). The app that holds the requests calls
# `request_lifecycle` inside the transaction that opened or closed the request.

REQUEST_OPENED = "opened"
REQUEST_CLOSED = ("rejected", "expired", "cancelled")

_lifecycle_listeners: list[Callable[..., Any]] = []


def request_listener_add(listener: Callable[..., Any]) -> None:
    """`listener(*, action, request_id, environment, parameters, event, actor)`; `event` is
    "opened" or the closing status (rejected, expired, cancelled)."""
    if listener not in _lifecycle_listeners:
        _lifecycle_listeners.append(listener)


def request_lifecycle(
    *,
    action: str,
    request_id: int,
    environment: Environment,
    parameters: dict[str, Any],
    event: str,
    actor: User,
) -> None:
    for listener in list(_lifecycle_listeners):
        listener(
            action=action,
            request_id=request_id,
            environment=environment,
            parameters=parameters,
            event=event,
            actor=actor,
        )
