"""The five gate presets: plain specs in the API's shape that make valid gates."""

import pytest
from django.core.exceptions import ValidationError

from releasecontrol.models import Environment
from rollouts.plans import gate_spec_clean
from rollouts.presets import GATE_PRESETS, gate_from_spec, gate_preset
from tests.rollouts.factories import ReleaseFactory


@pytest.mark.parametrize(
    ("name", "metric", "aggregate", "comparator", "threshold", "window", "on_failure"),
    [
        ("error-rate", "error_rate", "avg", ">", 5, 300, "rollback"),
        ("latency-p95", "latency_seconds", "p95", ">", 5, 600, "halve"),
        ("security-violation", "security_violations", "sum", ">", 0, 300, "rollback"),
        ("cost-overrun", "cost_to_projection", "avg", ">", 3, 3600, "pause"),
        ("user-complaints", "user_complaints", "sum", ">", 10, 3600, "review"),
    ],
)
def test_gate_preset__each_trigger__the_gate_it_names(
    name, metric, aggregate, comparator, threshold, window, on_failure
):
    spec = gate_preset(name)

    assert (spec["metric"], spec["aggregate"], spec["comparator"], spec["threshold"]) == (
        metric,
        aggregate,
        comparator,
        threshold,
    )
    assert (spec["window_seconds"], spec["on_failure"], spec["source"]) == (
        window,
        on_failure,
        "push",
    )


def test_gate_presets__five_with_names_and_labels():
    assert [p["name"] for p in GATE_PRESETS] == [
        "error-rate",
        "latency-p95",
        "security-violation",
        "cost-overrun",
        "user-complaints",
    ]
    assert all(p["label"] and p["gate"]["name"] == p["name"] for p in GATE_PRESETS)


@pytest.mark.django_db
@pytest.mark.parametrize("preset", [p["name"] for p in GATE_PRESETS])
def test_gate_from_spec__each_preset__a_valid_unsaved_gate(preset):
    release = ReleaseFactory(environment=Environment.objects.get(slug="production"))

    gate = gate_from_spec(release=release, spec=gate_preset(preset))

    assert gate.pk is None and gate.acts
    assert gate.no_data == "pause"


def test_gate_preset__overrides__applied_and_the_preset_itself_untouched():
    spec = gate_preset("error-rate", threshold=2, name="checkout-errors", advisory=True)

    assert (spec["threshold"], spec["name"], spec["advisory"]) == (2, "checkout-errors", True)
    assert gate_preset("error-rate")["threshold"] == 5


def test_gate_preset__unknown_name_or_field__refused():
    with pytest.raises(ValueError, match="no gate preset 'errors'"):
        gate_preset("errors")
    with pytest.raises(ValueError, match="not gate fields: colour"):
        gate_preset("error-rate", colour="red")


@pytest.mark.django_db
def test_gate_from_spec__prometheus_source__promql_set():
    release = ReleaseFactory(environment=Environment.objects.get(slug="staging"))

    gate = gate_from_spec(
        release=release, spec=gate_preset("error-rate", source={"prometheus": "up == 0"})
    )

    assert gate.promql == "up == 0"


@pytest.mark.parametrize("preset", [p["name"] for p in GATE_PRESETS])
def test_gate_spec_clean__preset_with_override__the_preset_gate_as_overridden(preset):
    clean = gate_spec_clean({"preset": preset, "threshold": 2.5}, "gates[0]")
    expected = gate_preset(preset, threshold=2.5)
    assert clean["metric"] == expected["metric"]
    assert clean["on_failure"] == expected["on_failure"]
    assert clean["threshold"] == 2.5


def test_gate_spec_clean__unknown_preset__400_naming_the_known_ones():
    with pytest.raises(ValidationError) as refused:
        gate_spec_clean({"preset": "../etc"}, "gates[0]")
    message = refused.value.message_dict["gates[0].preset"][0]
    assert "'../etc'" in message and "error-rate" in message
