"""The flag changes people may ask approval for (releasecontrol.requestable):

- `flag.state.set` `{"flag", "mode", "percentage", "allowlist"}`: the whole state asked for
  (percentage 0 and an empty allowlist when omitted); schedulable, so an approved request
  with a window runs at its start as the system actor;
- `flag.accept` `{"flag"}`: serve exactly the flag's on- and off-value where they need
  acceptance (production); schedulable too (accepting at a window is as plannable).

Each preview is exactly what executing would change: the flag state before (with its
version) and after. Each executor calls the ordinary service with the approval, which the
service re-verifies in its own transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError

from releasecontrol import requestable
from releasecontrol.models import Environment, User
from releasecontrol.requestable import VerifiedApproval

from . import actions
from .acceptance import flag_accept
from .models import Flag, FlagState
from .rules import MODES, StateValue, clean_allowlist, reduces_exposure
from .services import flag_state_set
from .writes import state_value, state_view

STATE_SET_FIELDS = ("flag", "mode", "percentage", "allowlist")


def _unknown(raw: Mapping[str, Any], allowed: tuple[str, ...]) -> dict[str, str]:
    return {
        f"parameters.{name}": f"unknown parameter (send only {', '.join(allowed)})"
        for name in raw
        if name not in allowed
    }


def _flag_key(raw: Mapping[str, Any], errors: dict[str, str]) -> str:
    key = raw.get("flag")
    if not isinstance(key, str) or not key.strip():
        errors["parameters.flag"] = "required: the key of the flag"
        return ""
    if not Flag.objects.filter(key=key).exists():
        errors["parameters.flag"] = f"there is no flag {key!r}"
    return key


def state_set_parameters(raw: Mapping[str, Any]) -> dict[str, Any]:
    errors = _unknown(raw, STATE_SET_FIELDS)
    key = _flag_key(raw, errors)
    mode = raw.get("mode")
    if mode not in MODES:
        errors["parameters.mode"] = f"must be one of {', '.join(MODES)}"
    percentage = raw.get("percentage", 0)
    if isinstance(percentage, bool) or not isinstance(percentage, int):
        errors["parameters.percentage"] = "must be a whole number from 0 to 100"
    elif not 0 <= percentage <= 100:
        errors["parameters.percentage"] = "must be from 0 to 100"
    allowlist: list[str] = []
    try:
        allowlist = clean_allowlist(raw.get("allowlist", []))
    except ValueError as error:
        errors["parameters.allowlist"] = str(error)
    if errors:
        raise ValidationError(errors)
    return {"flag": key, "mode": mode, "percentage": percentage, "allowlist": allowlist}


def accept_parameters(raw: Mapping[str, Any]) -> dict[str, Any]:
    errors = _unknown(raw, ("flag",))
    key = _flag_key(raw, errors)
    if errors:
        raise ValidationError(errors)
    return {"flag": key}


def _state_of(flag: Flag, environment: Environment) -> FlagState | None:
    return FlagState.objects.filter(flag=flag, environment=environment).first()


def _item(flag: Flag, environment: Environment, before: dict, after: dict) -> dict[str, Any]:
    return {
        "type": "flag_state",
        "id": f"{flag.key}@{environment.slug}",
        "name": f"{flag.key} in {environment.slug}",
        "before": before,
        "after": after,
    }


def state_set_preview(environment: Environment, parameters: dict[str, Any]) -> dict[str, Any]:
    flag = Flag.objects.get(key=parameters["flag"])
    state = _state_of(flag, environment)
    before = state_value(state) if state else StateValue()
    version = state.version if state else 1
    after = StateValue.of(parameters["mode"], parameters["percentage"], parameters["allowlist"])
    return {
        "items": [
            _item(
                flag,
                environment,
                {**before.as_dict(), "version": version},
                {**after.as_dict(), "version": version + int(after != before)},
            )
        ],
        "reduces_exposure": reduces_exposure(before, after),
    }


def _accepted(state: FlagState | None) -> dict[str, Any] | None:
    accepted = state.accepted_values if state else None
    return None if accepted is None else {"on_value": accepted[0], "off_value": accepted[1]}


def accept_preview(environment: Environment, parameters: dict[str, Any]) -> dict[str, Any]:
    flag = Flag.objects.get(key=parameters["flag"])
    if not flag.needs_acceptance_in(environment):
        raise ValidationError(
            {
                "parameters.flag": f"Nothing to accept: {flag.key}'s values are served in "
                f"{environment.slug} as defined."
            }
        )
    state = _state_of(flag, environment)
    version = state.version if state else 1
    served = state is not None and state.serves_values_of(flag)
    values = {"on_value": flag.on_value, "off_value": flag.off_value}
    return {
        "items": [
            _item(
                flag,
                environment,
                {"accepted": _accepted(state), "version": version},
                {"accepted": values, "version": version + int(not served)},
            )
        ],
        "reduces_exposure": False,
    }


def _before_version(approval: VerifiedApproval) -> int:
    return approval.preview["items"][0]["before"]["version"]


def state_set_execute(
    *,
    actor: User,
    environment: Environment,
    parameters: dict[str, Any],
    approval: VerifiedApproval,
    reason: str,
) -> dict[str, Any]:
    flag = Flag.objects.get(key=parameters["flag"])
    state = flag_state_set(
        actor=actor,
        flag=flag,
        environment=environment,
        mode=parameters["mode"],
        percentage=parameters["percentage"],
        allowlist=parameters["allowlist"],
        expected_version=_before_version(approval),
        reason=reason,
        approval=approval,
    )
    return {"flag": flag.key, "environment": environment.slug, **state_view(state)}


def accept_execute(
    *,
    actor: User,
    environment: Environment,
    parameters: dict[str, Any],
    approval: VerifiedApproval,
    reason: str,
) -> dict[str, Any]:
    flag = Flag.objects.get(key=parameters["flag"])
    state = flag_accept(
        actor=actor,
        flag=flag,
        environment=environment,
        expected_version=_before_version(approval),
        reason=reason,
        approval=approval,
    )
    return {
        "flag": flag.key,
        "environment": environment.slug,
        "accepted": _accepted(state),
        "version": state.version,
    }


def requestables_register() -> None:
    """Called from FlagsConfig.ready()."""
    requestable.register(
        name=actions.FLAG_STATE_SET.name,
        parameters=state_set_parameters,
        preview=state_set_preview,
        executor=state_set_execute,
        schedulable=True,
    )
    requestable.register(
        name=actions.FLAG_ACCEPT.name,
        parameters=accept_parameters,
        preview=accept_preview,
        executor=accept_execute,
        schedulable=True,
    )
