"""Fixtures for deployments: people in every role on every environment, a frozen clock."""

import datetime as dt

import pytest

from releasecontrol.models import Environment, User, UserKind
from releasecontrol.services import role_grant, user_create
from tests.factories import PASSWORD

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
