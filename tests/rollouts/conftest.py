"""Fixtures for the release tests: a flag and a release made through the services."""

import pytest

from tests.factories import FlagFactory

GATE = {
    "name": "errors",
    "metric": "error_rate",
    "aggregate": "avg",
    "comparator": ">",
    "threshold": 5,
    "window_seconds": 300,
    "min_samples": 3,
    "failures_to_act": 1,
    "no_data": "pause",
    "on_failure": "rollback",
    "advisory": False,
    "stage": None,
    "source": "push",
}
TWO_STAGES = {
    "stages": [
        {"name": "canary", "mode": "percentage", "percentage": 5, "hold_seconds": 600},
        {"name": "full", "mode": "full", "percentage": 100},
    ]
}


@pytest.fixture
def flag(db):
    return FlagFactory(key="new-checkout")


@pytest.fixture
def make_release(flag):
    from rollouts.services import release_create

    def make(actor, environment, *, flags=None, plan=TWO_STAGES, gates=None, **extra):
        return release_create(
            actor=actor,
            name=extra.pop("name", "checkout-v2"),
            version="2.4.0",
            environment=environment,
            flags=flags or [flag],
            plan=plan,
            gates=[GATE] if gates is None else gates,
            reason=extra.pop("reason", "ship it"),
            **extra,
        )

    return make
