"""Gate presets: the common triggers as ready gate specs, in the shape `POST /api/v1/releases`
takes in `gates` (and `gate_from_spec`, an unsaved Gate from such a spec, for replaying an
edited gate before saving it).

Every preset expects its metric to be reported regularly, zero included (an exporter or a
monitoring job pushing each interval): a gate that hears nothing answers `no_data`, and the
presets' policy for that is `pause`, because silence from a reporter is not good news.
"""

from __future__ import annotations

import copy
from typing import Any

from rollouts.models import Gate, Release

SPEC_FIELDS = (
    "name",
    "metric",
    "aggregate",
    "comparator",
    "threshold",
    "window_seconds",
    "min_samples",
    "failures_to_act",
    "no_data",
    "on_failure",
    "advisory",
    "stage",
    "source",
    "baseline",
)


def _spec(**fields: Any) -> dict[str, Any]:
    return {
        "aggregate": "avg",
        "comparator": ">",
        "window_seconds": 300,
        "min_samples": 3,
        "failures_to_act": 1,
        "no_data": "pause",
        "advisory": False,
        "stage": None,
        "source": "push",
        "baseline": None,
        **fields,
    }


GATE_PRESETS: tuple[dict[str, Any], ...] = (
    {
        "name": "error-rate",
        "label": "Error rate above 5% for 5 minutes: roll back",
        "gate": _spec(
            name="error-rate",
            metric="error_rate",  # percent of requests that failed
            threshold=5,
            on_failure="rollback",
        ),
    },
    {
        "name": "latency-p95",
        "label": "p95 latency above 5 s for 10 minutes: halve the exposure",
        "gate": _spec(
            name="latency-p95",
            metric="latency_seconds",
            aggregate="p95",
            threshold=5,
            window_seconds=600,
            min_samples=10,
            on_failure="halve",
        ),
    },
    {
        "name": "security-violation",
        "label": "Any security violation: roll back",
        "gate": _spec(
            name="security-violation",
            metric="security_violations",  # violations seen since the previous report
            aggregate="sum",
            threshold=0,
            min_samples=1,
            on_failure="rollback",
        ),
    },
    {
        # A threshold, not a baseline: the projection is a number known before the release,
        # not a cohort measured beside it, so the reporter divides and pushes the ratio.
        "name": "cost-overrun",
        "label": "Cost above 3x the projection: pause",
        "gate": _spec(
            name="cost-overrun",
            metric="cost_to_projection",  # actual cost / projected cost
            threshold=3,
            window_seconds=3600,
            min_samples=1,
            on_failure="pause",
        ),
    },
    {
        "name": "user-complaints",
        "label": "More than 10 user complaints in an hour: pause for review",
        "gate": _spec(
            name="user-complaints",
            metric="user_complaints",  # complaints received since the previous report
            aggregate="sum",
            threshold=10,
            window_seconds=3600,
            min_samples=1,
            on_failure="review",
        ),
    },
)
PRESETS_BY_NAME = {preset["name"]: preset for preset in GATE_PRESETS}


def gate_preset(name: str, /, **overrides: Any) -> dict[str, Any]:
    """A preset's gate spec, with any field overridden (`threshold=2`, `name="errors"`: the
    preset's name is positional, so the gate's own name can be overridden too)."""
    if name not in PRESETS_BY_NAME:
        raise ValueError(f"no gate preset {name!r}; presets: {', '.join(PRESETS_BY_NAME)}")
    unknown = set(overrides) - set(SPEC_FIELDS)
    if unknown:
        raise ValueError(f"not gate fields: {', '.join(sorted(unknown))}")
    return {**copy.deepcopy(PRESETS_BY_NAME[name]["gate"]), **overrides}


def gate_from_spec(*, release: Release, spec: dict[str, Any]) -> Gate:
    """An unsaved Gate of `release` from a spec in the API's shape, validated by the one gate
    validator (`plans.gate_spec_clean`: ValidationError naming each field); `stage` is
    ignored: a replay reads the whole period given."""
    from .plans import gate_spec_clean  # plans reads the presets at import

    fields = gate_spec_clean({"name": "replay", **spec})
    fields.pop("stage", None)
    return Gate(release=release, **fields)
