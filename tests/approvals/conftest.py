"""Fixtures for approvals: people in every role on every environment, a flag, a short
checklist, a frozen clock, and a test-only requestable action that changes a flag through
the flags app's ordinary service."""

import datetime as dt

import pytest

from approvals.checklists import checklist_template_save
from releasecontrol.models import Environment, User, UserKind
from releasecontrol.services import role_grant, user_create
from tests.factories import PASSWORD

from .requestables import (
    FLAG_CHANGE,
    FLAG_CHANGE_MANUAL,
    flag_change_registered,
)

START = dt.datetime(2026, 3, 4, 10, 0, tzinfo=dt.UTC)  # a Wednesday, outside any weekend


@pytest.fixture
def clock(time_machine):
    time_machine.move_to(START, tick=False)
    return time_machine


@pytest.fixture
def flag_change(db):
    """`test.flag.change` (schedulable) and `test.flag.change.manual` (never scheduled)."""
    with (
        flag_change_registered(FLAG_CHANGE, schedulable=True),
        flag_change_registered(FLAG_CHANGE_MANUAL, schedulable=False),
    ):
        yield FLAG_CHANGE


def _person(username, role, *, kind=UserKind.HUMAN, superuser=False, everywhere=True):
    user = user_create(
        actor=User.system(), username=username, kind=kind, password=PASSWORD, is_superuser=superuser
    )
    if role:
        role_grant(
            actor=User.system(),
            user=user,
            role=role,
            environments=Environment.objects.all() if everywhere else None,
        )
    return user


@pytest.fixture
def people(db):
    """Developers and agents hold their role on every environment here (capped in production
    to preparing and asking), so each may request anywhere."""
    return {
        "rita": _person("rita", "release_manager"),
        "rhea": _person("rhea", "release_manager"),
        "ravi": _person("ravi", "release_manager"),
        "omar": _person("omar", "oncall"),
        "dev": _person("dev", "developer"),
        "audrey": _person("audrey", "auditor"),
        "ci-bot": _person("ci-bot", "agent", kind=UserKind.AGENT),
        "rogue-bot": _person("rogue-bot", "release_manager", kind=UserKind.AGENT),
        "root": _person("root", None, superuser=True),
        "otto": _person("otto", None),
        "system": User.system(),
    }


@pytest.fixture
def flag(people):
    from flags.services import flag_create

    return flag_create(actor=people["rita"], key="new-checkout", name="New checkout")


@pytest.fixture
def short_checklist(people):
    """Two items: one required with evidence, one optional."""
    return checklist_template_save(
        actor=people["root"],
        slug="short",
        name="Short checklist",
        items=[
            {
                "section": "Tests passed",
                "text": "Unit tests passed (X/Y)",
                "required": True,
                "evidence_required": True,
            },
            {"section": "Monitoring", "text": "Dashboards updated", "required": False},
        ],
    )


@pytest.fixture
def world(clock, flag_change, people, flag, short_checklist):
    return people
