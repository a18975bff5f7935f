"""A test-only requestable action: set a flag's state through flags.services.flag_state_set,
with a pydantic parameter schema, an exact preview, and an executor that passes the approval
on (the service re-verifies it as this action)."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import pydantic
from django.core.exceptions import ValidationError

from flags.models import Flag, FlagState
from flags.rules import StateValue, reduces_exposure
from flags.services import flag_state_set, state_value, state_view

FLAG_CHANGE = "test.flag.change"
FLAG_CHANGE_MANUAL = "test.flag.change.manual"


class FlagChange(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")

    flag: str
    mode: Literal["off", "shadow", "allowlist", "percentage", "full"]
    percentage: int = pydantic.Field(0, ge=0, le=100)
    allowlist: list[str] = []


def preview(environment, parameters):
    flag = Flag.objects.filter(key=parameters["flag"]).first()
    if flag is None:
        raise ValidationError({"parameters.flag": f"There is no flag {parameters['flag']!r}."})
    state = FlagState.objects.get(flag=flag, environment=environment)
    before = state_value(state)
    after = StateValue.of(parameters["mode"], parameters["percentage"], parameters["allowlist"])
    return {
        "items": [
            {
                "type": "flag_state",
                "id": f"{flag.pk}:{environment.pk}",
                "name": flag.key,
                "before": state_view(state),
                "after": after.as_dict(),
            }
        ],
        "reduces_exposure": reduces_exposure(before, after),
    }


def executor(*, actor, environment, parameters, approval, reason):
    state = flag_state_set(
        actor=actor,
        flag=Flag.objects.get(key=parameters["flag"]),
        environment=environment,
        mode=parameters["mode"],
        percentage=parameters["percentage"],
        allowlist=parameters["allowlist"],
        expected_version=approval.preview["items"][0]["before"]["version"],
        reason=reason,
        approval=approval,
        action=approval.action,
    )
    return state_view(state)


def requestable_attributes(name, *, schedulable):
    return {
        "name": name,
        "parameters": FlagChange,
        "preview": preview,
        "executor": executor,
        "schedulable": schedulable,
    }


@contextmanager
def flag_change_registered(name: str = FLAG_CHANGE, *, schedulable: bool) -> Iterator[str]:
    """Register the test action with the policy (as a flag change declares itself) and as a
    requestable action, for the length of a test."""
    from releasecontrol import policy, requestable

    policy.register(
        name=name,
        description="Change a test flag's state",
        permission="change_flags",
        mutates=True,
        reduces_exposure=None,
        production_execution=True,
        approval=False,
        administrative=False,
    )
    requestable.register(**requestable_attributes(name, schedulable=schedulable))
    try:
        yield name
    finally:
        requestable.unregister(name)
        policy.unregister(name)
