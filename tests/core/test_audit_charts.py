"""Audit charts: counted per day in the database, drawn by the vendored Plotly."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from releasecontrol.audit import Target
from releasecontrol.audit.charts import (
    DayCount,
    activity_by_day,
    chart_figures,
    chart_totals,
    chart_window,
)
from releasecontrol.audit.selectors import AuditFilter
from releasecontrol.models import Environment, User
from tests.factories import audit_event

# After the accounts the fixtures make (recorded now; time never goes back along the chain),
# and far enough ahead that the window holds only these events.
DAY1 = dt.datetime(2036, 3, 10, 9, 30, tzinfo=dt.UTC)
DAY2 = DAY1 + dt.timedelta(days=1)
DAY4 = DAY1 + dt.timedelta(days=3)


@contextmanager
def clock(at: dt.datetime, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Events are stamped with the time they are recorded: record them on another day."""
    with monkeypatch.context() as patch:
        patch.setattr(timezone, "now", lambda: at)
        yield


@pytest.fixture
def days_of_activity(
    monkeypatch: pytest.MonkeyPatch,
    system_user: User,
    release_manager: User,
    agent: User,
    production: Environment,
    staging: Environment,
) -> None:
    flag = Target("flag", "1", "new-checkout")
    with clock(DAY1, monkeypatch):
        audit_event(actor=release_manager, action="flag.state.set", environment=production)
        audit_event(actor=agent, action="flag.state.set", environment=staging, target=flag)
        for _ in range(3):  # an agent knocking on production
            audit_event(
                actor=agent,
                action="flag.state.set",
                environment=production,
                target=flag,
                outcome="denied",
            )
        audit_event(actor=agent, action="flag.state.set", environment=staging, outcome="denied")
    with clock(DAY2, monkeypatch):
        audit_event(actor=system_user, action="killswitch.engage", environment=production)
        audit_event(actor=system_user, action="flag.state.set", environment=production)
        audit_event(actor=release_manager, action="killswitch.engage", environment=staging)
    with clock(DAY4 + dt.timedelta(hours=14), monkeypatch):  # 23:30 UTC: still day 4
        audit_event(actor=release_manager, action="flag.state.set", environment=staging)


def window(**params: str) -> AuditFilter:
    return AuditFilter.from_params({"since": "2036-03-10", "until": "2036-03-13", **params})


def test_activity_by_day__three_days__counted_by_day_and_kind_in_one_query(
    days_of_activity,
) -> None:
    with CaptureQueriesContext(connection) as queries:
        counts = activity_by_day(window())

    assert len(queries) == 1
    assert counts == [
        DayCount(DAY1.date(), "agent", 5, 4, 3, 0),
        DayCount(DAY1.date(), "human", 1, 0, 0, 0),
        DayCount(DAY2.date(), "human", 1, 0, 0, 1),
        DayCount(DAY2.date(), "system", 2, 0, 0, 1),
        DayCount(DAY4.date(), "human", 1, 0, 0, 0),
    ]


def test_activity_by_day__environment_filter__only_that_environment(days_of_activity) -> None:
    counts = activity_by_day(window(environment="staging"))

    assert [(c.day, c.actor_kind, c.total) for c in counts] == [
        (DAY1.date(), "agent", 2),
        (DAY2.date(), "human", 1),
        (DAY4.date(), "human", 1),
    ]


def test_chart_window__no_start__the_last_30_days_up_to_until() -> None:
    now = dt.datetime(2026, 11, 21, 15, 0, tzinfo=dt.UTC)

    defaulted = chart_window(AuditFilter(environment="production"), now=now)
    given = AuditFilter.from_params({"since": "2026-01-01"})

    assert defaulted.since == dt.datetime(2026, 10, 23, tzinfo=dt.UTC)
    assert defaulted.environment == "production"
    assert chart_window(given, now=now) is given


def test_chart_figures__agents_in_production__their_own_red_trace(days_of_activity) -> None:
    counts = activity_by_day(window())

    figures = chart_figures(counts, window())

    days = ["2036-03-10", "2036-03-11", "2036-03-12", "2036-03-13"]
    actions = {t["name"]: t for t in figures["actions"]["data"]}
    assert actions["agents"]["x"] == days  # quiet days are there, with zero
    assert actions["agents"]["y"] == [5, 0, 0, 0]
    assert actions["people"]["y"] == [1, 1, 0, 1]
    assert actions["system"]["y"] == [0, 2, 0, 0]
    assert figures["actions"]["layout"]["barmode"] == "stack"
    denied = {t["name"]: t for t in figures["denied"]["data"]}
    assert denied["agents in production"]["y"] == [3, 0, 0, 0]
    assert denied["agents in production"]["marker"]["color"] == "#b91c1c"
    assert denied["agents elsewhere"]["y"] == [1, 0, 0, 0]
    safety = {t["name"]: t for t in figures["safety"]["data"]}
    assert safety["kill switches engaged"]["y"] == [0, 2, 0, 0]
    assert safety["automatic actions (system)"]["y"] == [0, 2, 0, 0]
    assert chart_totals(counts).agent_production_denials == 3


def test_chart_figures__no_events__empty_series_not_an_error() -> None:
    figures = chart_figures([], window())

    assert figures["actions"]["data"][0]["y"] == [0, 0, 0, 0]


def test_charts_page__auditor__figures_as_json_and_plotly_served_locally(
    client: Client, auditor: User, days_of_activity
) -> None:
    client.force_login(auditor)

    response = client.get("/audit/charts/", {"since": "2036-03-10", "until": "2036-03-13"})

    body = response.content.decode()
    assert response.status_code == 200
    assert '<script src="/static/vendor/plotly-strict.min.js" defer></script>' in body
    assert '<script src="/static/js/charts.js" defer></script>' in body
    assert not re.search(r'<script[^>]+src="(https?:)?//', body), "no CDN"
    figures = json.loads(re.search(r'id="audit-figures"[^>]*>(.*?)</script>', body, re.S).group(1))
    assert set(figures) == {"actions", "denied", "safety"}
    # No inline script: the figures are a JSON data block, drawn by static/js/charts.js.
    inline = re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", body)
    assert inline == [' id="audit-figures" type="application/json"']
    assert re.search(r"<strong>3</strong> agent attempts refused in production", body)


def test_charts_page__filter__respected_and_carried_to_the_events_tab(
    client: Client, auditor: User, days_of_activity
) -> None:
    client.force_login(auditor)
    params = {"since": "2036-03-10", "until": "2036-03-13", "environment": "staging"}

    body = client.get("/audit/charts/", params).content.decode()

    figures = json.loads(re.search(r'id="audit-figures"[^>]*>(.*?)</script>', body, re.S).group(1))
    agents = next(t for t in figures["actions"]["data"] if t["name"] == "agents")
    assert agents["y"] == [2, 0, 0, 0]
    assert "environment=staging" in re.search(r'<a href="(/audit/\?[^"]*)"', body).group(1)


def test_charts_page__bad_filter__400(client: Client, auditor: User) -> None:
    client.force_login(auditor)

    response = client.get("/audit/charts/", {"until": "soon"})

    assert response.status_code == 400
    assert b"until: " in response.content


def test_charts_page__10_or_200_events__same_number_of_queries(
    client: Client, auditor: User, agent: User, production: Environment, django_assert_num_queries
) -> None:
    def add(n: int) -> None:
        for _ in range(n):
            audit_event(actor=agent, action="flag.state.set", environment=production)

    add(10)
    client.force_login(auditor)
    client.get("/audit/charts/")
    with CaptureQueriesContext(connection) as ten:
        client.get("/audit/charts/")

    add(190)
    with django_assert_num_queries(len(ten)):
        response = client.get("/audit/charts/")
    assert re.search(rb"<strong>2\d\d</strong> events", response.content)


def test_vendored_plotly__present_and_not_fetched() -> None:
    plotly = Path(settings.BASE_DIR) / "static" / "vendor" / "plotly-strict.min.js"

    assert plotly.read_text(errors="replace")[:200].count("plotly.js (strict - minified) v") == 1
