"""The core's registry of requestable actions: what an app must declare, how parameters are
cleaned, the preview's shape, and how drift is named."""

import pytest
from django.core.exceptions import ImproperlyConfigured, ValidationError

from releasecontrol import requestable

from .requestables import FLAG_CHANGE, FlagChange, executor, preview


def test_register__missing_or_unknown_attribute__fails_at_import():
    with pytest.raises(ImproperlyConfigured, match="missing \\['schedulable'\\]"):
        requestable.register(
            name="flag.state.restore", parameters=FlagChange, preview=preview, executor=executor
        )
    with pytest.raises(ImproperlyConfigured, match="unknown \\['priority'\\]"):
        requestable.register(
            name="flag.state.restore",
            parameters=FlagChange,
            preview=preview,
            executor=executor,
            schedulable=True,
            priority=1,
        )
    assert "flag.state.restore" not in {r.name for r in requestable.registered()}


def test_register__action_the_policy_does_not_know__fails():
    with pytest.raises(ImproperlyConfigured, match=r"No action 'rocket\.launch'"):
        requestable.register(
            name="rocket.launch",
            parameters=FlagChange,
            preview=preview,
            executor=executor,
            schedulable=False,
        )


def test_register__schedulable_not_a_bool_or_executor_not_callable__fails():
    with pytest.raises(ImproperlyConfigured, match="schedulable"):
        requestable.register(
            name="flag.state.set",
            parameters=FlagChange,
            preview=preview,
            executor=executor,
            schedulable="yes",
        )
    with pytest.raises(ImproperlyConfigured, match="executor"):
        requestable.register(
            name="flag.state.set",
            parameters=FlagChange,
            preview=preview,
            executor=None,
            schedulable=True,
        )


def test_register__same_name_differently__fails(flag_change):
    with pytest.raises(ImproperlyConfigured, match="twice"):
        requestable.register(
            name=FLAG_CHANGE,
            parameters=FlagChange,
            preview=preview,
            executor=executor,
            schedulable=False,
        )
    assert requestable.get(FLAG_CHANGE).schedulable is True


def test_get__unknown_action__validation_error_names_the_field():
    with pytest.raises(ValidationError) as error:
        requestable.get("rocket.launch")
    assert "action" in error.value.message_dict


def test_parameters_clean__pydantic_model__errors_name_each_field(flag_change):
    with pytest.raises(ValidationError) as error:
        requestable.parameters_clean(FLAG_CHANGE, {"flag": "x", "mode": "on", "percentage": 300})
    assert set(error.value.message_dict) == {"mode", "percentage"}

    assert requestable.parameters_clean(FLAG_CHANGE, {"flag": "x", "mode": "full"}) == {
        "flag": "x",
        "mode": "full",
        "percentage": 0,
        "allowlist": [],
    }
    with pytest.raises(ValidationError, match="object"):
        requestable.parameters_clean(FLAG_CHANGE, ["flag", "x"])


def test_preview_compute__wrong_shape__fails_loudly(flag_change, production):
    requestable.unregister(FLAG_CHANGE)
    requestable.register(
        name=FLAG_CHANGE,
        parameters=FlagChange,
        preview=lambda environment, parameters: {"items": [{"id": 1}]},
        executor=executor,
        schedulable=True,
    )
    with pytest.raises(ImproperlyConfigured, match="reduces_exposure"):
        requestable.preview_compute(FLAG_CHANGE, production, {})


def test_preview_drift__names_each_item_and_field_that_changed():
    def item(key, version, mode="off"):
        return {
            "type": "flag_state",
            "id": key,
            "name": key,
            "before": {"mode": mode, "version": version},
            "after": {},
        }

    approved = {"items": [item("a", 1), item("b", 4)]}
    current = {"items": [item("a", 2, "full"), item("c", 1)]}

    assert requestable.preview_drift(approved, current) == [
        "a: mode 'off' -> 'full', version 1 -> 2",
        "b: no longer affected",
        "c: now affected too",
    ]
    assert requestable.preview_drift(approved, approved) == []


def test_verifier_install__a_second_verifier__refused():
    with pytest.raises(ImproperlyConfigured, match="already installed"):
        requestable.verifier_install(lambda *args, **kwargs: None)
