"""Fixtures for the rollouts tests: people in every role on every environment, a frozen clock
(deployments); a flag and a release made through the services (releases)."""

import datetime as dt

import pytest

from releasecontrol.models import Environment, User, UserKind
from releasecontrol.services import role_grant, user_create
from tests.factories import PASSWORD, FlagFactory

START = dt.datetime(2026, 3, 4, 10, 0, tzinfo=dt.UTC)  # a Wednesday


@pytest.fixture
def clock(time_machine):
    time_machine.move_to(START, tick=False)
    return time_machine


def _person(username, role, *, kind=UserKind.HUMAN, superuser=False):
    user = user_create(
        actor=User.system(), username=username, kind=kind, password=PASSWORD, is_superuser=superuser
    )
    if role:
        role_grant(
            actor=User.system(), user=user, role=role, environments=Environment.objects.all()
        )
    return user


@pytest.fixture
def people(db):
    return {
        "rita": _person("rita", "release_manager"),
        "rhea": _person("rhea", "release_manager"),
        "ravi": _person("ravi", "release_manager"),
        "omar": _person("omar", "oncall"),
        "dev": _person("dev", "developer"),
        "audrey": _person("audrey", "auditor"),
        "ci-bot": _person("ci-bot", "agent", kind=UserKind.AGENT),
        "rogue-bot": _person("rogue-bot", "release_manager", kind=UserKind.AGENT),
        "otto": _person("otto", None),
        "system": User.system(),
    }


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
