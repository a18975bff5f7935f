"""The one policy: may this actor take this action on this environment?

Actions are data. Each is registered once with what it does, and the rules
below read only those attributes, the actor's kind and the permissions its role
grants give on the environment:

- agents never execute production actions, never approve anything, and never take an
  action whose permission is one agents never exercise (`roles.AGENTS_NEVER`: kill
  switches, approvals, deployments), whatever they were granted;
- the system actor may only reduce exposure, or follow a plan: in production one a human
  approved, in development and staging the plan as started (by someone who may take the
  step themselves);
- everyone else needs the action's permission on the environment (from a role
  grant) or is a superuser.

A refusal raises PermissionDenied and leaves a `denied` audit event that stays
committed although the caller's transaction rolls back.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from guardian.shortcuts import get_objects_for_user

from . import roles
from .audit import Target, audit_record_denial
from .models import Environment, User

APP_LABEL = "releasecontrol"


@dataclass(frozen=True, kw_only=True)
class Action:
    """A registered action and the attributes the policy decides on. All are required."""

    name: str
    description: str
    # Guardian permission codename on the Environment; None for actions with no
    # environment, which only superusers (or the shell operator) take.
    permission: str | None
    mutates: bool
    # True: always shrinks who gets the on-value. False: may grow it.
    # None: depends on the change, and the caller says which (reduces_exposure=...).
    reduces_exposure: bool | None
    # In production this executes a change (flip, advance, approve, restore, roll back).
    production_execution: bool
    # Decides someone's request: never an agent's to take.
    approval: bool
    # Manages access (accounts, role grants, tokens): superusers and the shell operator.
    administrative: bool

    def __post_init__(self) -> None:
        for name in ("mutates", "production_execution", "approval", "administrative"):
            if not isinstance(getattr(self, name), bool):
                raise ImproperlyConfigured(f"Action {self.name!r}: {name} must be True or False")
        if self.reduces_exposure not in (True, False, None):
            raise ImproperlyConfigured(
                f"Action {self.name!r}: reduces_exposure must be True, False or None"
            )
        if not self.name or not self.description:
            raise ImproperlyConfigured("An action needs a name and a description")


_REGISTRY: dict[str, Action] = {}


def register(**attributes: Any) -> Action:
    """Register an action; a missing or unknown policy attribute fails at import time."""
    expected = {f.name for f in fields(Action)}
    missing = expected - attributes.keys()
    unknown = attributes.keys() - expected
    if missing or unknown:
        raise ImproperlyConfigured(
            f"Action {attributes.get('name', '?')!r} must declare exactly its policy attributes: "
            f"missing {sorted(missing)}, unknown {sorted(unknown)}"
        )
    action = Action(**attributes)
    if action.name in _REGISTRY and _REGISTRY[action.name] != action:
        raise ImproperlyConfigured(f"Action {action.name!r} is registered twice, differently")
    _REGISTRY[action.name] = action
    return action


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def registered_actions() -> list[Action]:
    return sorted(_REGISTRY.values(), key=lambda a: a.name)


def get_action(name: str) -> Action:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ImproperlyConfigured(f"No action {name!r} is registered") from None


@dataclass(frozen=True)
class Decision:
    allowed: bool
    why: str


def decide(
    actor: User,
    action: Action,
    environment: Environment | None,
    *,
    reduces_exposure: bool | None = None,
    approved_by: User | None = None,
) -> Decision:
    """The rules, without side effects."""
    if action.reduces_exposure is not None:
        reduces_exposure = action.reduces_exposure
    elif action.mutates and reduces_exposure is None:
        raise ImproperlyConfigured(
            f"Action {action.name!r} depends on the change: pass reduces_exposure"
        )
    production = environment is not None and environment.is_production
    where = f" in {environment.slug}" if environment is not None else ""

    if actor is None or not actor.pk:
        return Decision(False, "no actor")
    if actor.is_system:
        if action.administrative or not action.mutates or reduces_exposure:
            return Decision(True, "system: reduces exposure or changes nothing")
        if approved_by is not None and approved_by.is_active and not approved_by.is_system:
            if production and approved_by.is_human:
                return Decision(True, f"system: follows a plan approved by {approved_by}")
            if (
                not production
                and decide(
                    approved_by, action, environment, reduces_exposure=reduces_exposure
                ).allowed
            ):
                # Outside production automation follows the plan as it was started, so far
                # as the account that started it may take the step itself.
                return Decision(True, f"system: follows the plan {approved_by} started{where}")
        return Decision(
            False, f"automation may only reduce exposure or follow a human-approved plan{where}"
        )
    if not actor.is_active:
        return Decision(False, "the account is deactivated")
    if actor.is_agent:
        if action.approval:
            return Decision(False, "agent accounts never approve; a person must decide")
        if action.administrative:
            return Decision(False, "agent accounts never manage access")
        if action.permission in roles.AGENTS_NEVER:
            return Decision(
                False,
                f"agent accounts never {action.description.lower()}, whatever they are granted",
            )
        if production and action.production_execution:
            return Decision(
                False,
                "agent accounts may prepare and request production changes, never execute them",
            )
    if actor.is_superuser and actor.is_human:
        return Decision(True, "superuser")
    if action.permission is None:
        return Decision(False, f"only an administrator may {action.description.lower()}")
    if environment is None:
        # An action over every environment needs the permission on each of them.
        missing = Environment.objects.exclude(
            pk__in=get_objects_for_user(
                actor, f"{APP_LABEL}.{action.permission}", Environment, accept_global_perms=False
            ).values("pk")
        )
        if missing.exists():
            return Decision(
                False, f"{actor} may not {action.description.lower()} in every environment"
            )
        return Decision(True, f"holds {action.permission} everywhere")
    if actor.has_perm(f"{APP_LABEL}.{action.permission}", environment):
        return Decision(True, f"holds {action.permission}{where}")
    return Decision(False, f"{actor} has no role that may {action.description.lower()}{where}")


def authorize(
    actor: User,
    action: str | Action,
    environment: Environment | None = None,
    *,
    reduces_exposure: bool | None = None,
    approved_by: User | None = None,
    target: Target | None = None,
    requested: Any = None,
    reason: str = "",
) -> None:
    """Allow, or record the refusal (surviving any rollback) and raise PermissionDenied."""
    if isinstance(action, str):
        action = get_action(action)
    decision = decide(
        actor,
        action,
        environment,
        reduces_exposure=reduces_exposure,
        approved_by=approved_by,
    )
    if decision.allowed:
        return
    if actor is not None and actor.pk:
        audit_record_denial(
            actor=actor,
            action=action.name,
            environment=environment,
            target=target,
            after={"refused": decision.why, "requested": requested},
            reason=reason,
        )
    raise PermissionDenied(f"Refused: {decision.why}.")
