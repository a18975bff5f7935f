"""DORA figures over a fixture history whose answers are worked out by hand below.

The period: the 30 days to 2026-03-31 00:00 UTC (from 2026-03-01 00:00). Production history
(times UTC, lead = success - commit):

  A checkout  commit 03-02 08:00  succeeded 03-02 10:00                lead  2 h
  B checkout  commit 03-03 00:00  failed    03-03 12:00
  C checkout  commit 03-03 06:00  succeeded 03-03 18:00                lead 12 h  (B recovers: 6 h)
  L search    commit 03-04 23:00  succeeded 03-05 00:00                lead  1 h
              its release rolled back by a gate 03-07 00:00: 48 h later, outside the window
  D checkout  commit 03-10 00:00  succeeded 03-10 04:00, rolled back 05:00  lead 4 h
  E checkout  commit 03-10 06:00  succeeded 03-10 08:00                lead  2 h  (D recovers: 3 h)
  F search    commit 03-15 00:00  succeeded 03-15 10:00                lead 10 h
              its release rolled back by a gate 03-15 20:00 (10 h later: a change failure)
  H search    commit 03-19 00:00  succeeded 03-19 12:00                lead 12 h
  G checkout  commit 03-20 00:00  succeeded 03-20 01:00                lead  1 h
              emergency rollback of production 03-20 05:00: G is the latest success there
              (H is not: G came after it)
  I checkout  commit 03-24 20:00  failed    03-25 00:00                (never recovered)
  J checkout  succeeded 02-20 (before the period); K checkout succeeded 03-05 in staging.

Production, every service:
  successes A C L D E F H G = 8           -> frequency 8 / 30 = 0.2667 per day
  lead 1 1 2 2 4 10 12 12 (hours)         -> p50 (2 + 4) / 2 = 3.0; p90 rank 6.3 -> 12.0
  outcomes A B C L D E F H G I = 10; failures B D I (failed or rolled back), F (gate),
  G (emergency) = 5                       -> change failure rate 0.5
  failures B D I; recovered B (6 h), D (3 h) -> recovery p50 4.5 h, 1 unrecovered
Production, checkout only:
  successes A C D E G = 5 -> 0.1667; lead 1 2 2 4 12 -> p50 2.0, p90 rank 3.6 -> 4 + 0.6 x 8 = 8.8
  outcomes A B C D E G I = 7, failures B D I G = 4 -> 0.5714
With a 3-hour window: F (10 h) and G (4 h) no longer count -> 3 / 10 = 0.3.
Weeks (Mondays): 03-02 successes A C L (3 / 7 = 0.4286 per day), outcomes A B C L with B
failed (0.25), lead p50 of 2 12 1 = 2.0, recovery of B 6.0; 03-09 successes D E F (0.4286),
outcomes D E F with D and F failed (0.6667), recovery of D 3.0.
"""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from rollouts.dora import FACTS, Period, _percentile, count_rows, dora_figures, dora_rows, facts
from rollouts.dora_sql import count_in_sql
from rollouts.models import Rollback
from tests.rollouts.factories import DeploymentFactory, ReleaseEventFactory, ReleaseFactory

from .deploying import env

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 31, tzinfo=dt.UTC)


def at(day: int, hour: int = 0, month: int = 3) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, tzinfo=dt.UTC)


def succeeded(service, commit, success, *, environment="production", **extra):
    return DeploymentFactory(
        environment=env(environment),
        service=service,
        status=extra.pop("status", "succeeded"),
        commit_time=commit,
        go_at=commit,
        started_at=success,
        finished_at=success,
        succeeded_at=success,
        **extra,
    )


def failed(service, commit, failure):
    return DeploymentFactory(
        environment=env("production"),
        service=service,
        status="failed",
        commit_time=commit,
        started_at=failure,
        finished_at=failure,
    )


@pytest.fixture
def history(people):
    production = env("production")
    gate_released = ReleaseFactory(environment=production)
    late_gate = ReleaseFactory(environment=production)
    succeeded("checkout-api", at(2, 8), at(2, 10))  # A
    failed("checkout-api", at(3, 0), at(3, 12))  # B
    succeeded("checkout-api", at(3, 6), at(3, 18))  # C
    succeeded("search", at(4, 23), at(5, 0), release=late_gate)  # L
    ReleaseEventFactory(release=late_gate, kind="rolled_back", automatic=True, at=at(7, 0))
    succeeded("checkout-api", at(10, 0), at(10, 4), status="rolled_back", rolled_back_at=at(10, 5))
    succeeded("checkout-api", at(10, 6), at(10, 8))  # E
    succeeded("search", at(15, 0), at(15, 10), release=gate_released)  # F
    ReleaseEventFactory(release=gate_released, kind="rolled_back", automatic=True, at=at(15, 20))
    succeeded("search", at(19, 0), at(19, 12))  # H
    succeeded("checkout-api", at(20, 0), at(20, 1))  # G
    Rollback.objects.create(
        environment=production, actor=people["omar"], reason="Checkout down", created_at=at(20, 5)
    )
    failed("checkout-api", at(24, 20), at(25, 0))  # I
    succeeded("checkout-api", at(19, 0, month=2), at(20, 0, month=2))  # J
    succeeded("checkout-api", at(4, 0), at(5, 0), environment="staging")  # K


def test_dora__production_every_service__hand_computed_figures(history):
    figures = dora_figures(environment=env("production"), days=30, now=NOW)

    assert figures.deployment_frequency_per_day == pytest.approx(8 / 30, abs=1e-4)
    assert figures.lead_time_hours == {"p50": 3.0, "p90": 12.0}
    assert figures.change_failure_rate == 0.5
    assert figures.recovery_time_hours == {"p50": 4.5}
    assert figures.counts == {
        "successes": 8,
        "lead_time_samples": 8,
        "changes": 10,
        "change_failures": 5,
        "failed_or_rolled_back": 3,
        "gate_rollbacks": 1,
        "emergency_rollbacks": 1,
        "failures": 3,
        "recovered": 2,
        "unrecovered": 1,
    }


def test_dora__one_service__its_own_figures_emergency_still_blamed(history):
    figures = dora_figures(environment=env("production"), service="checkout-api", now=NOW)

    assert figures.deployment_frequency_per_day == pytest.approx(5 / 30, abs=1e-4)
    assert figures.lead_time_hours == {"p50": 2.0, "p90": 8.8}
    assert figures.change_failure_rate == pytest.approx(4 / 7, abs=1e-4)
    assert figures.recovery_time_hours == {"p50": 4.5}


def test_dora__short_failure_window__gate_and_emergency_rollbacks_out_of_it(history, settings):
    settings.CHANGE_FAILURE_WINDOW_HOURS = 3

    figures = dora_figures(environment=env("production"), now=NOW)

    assert figures.change_failure_rate == 0.3
    assert (figures.counts["gate_rollbacks"], figures.counts["emergency_rollbacks"]) == (0, 0)


def test_dora__weeks__grouped_by_the_moment_each_figure_counts(history):
    weeks = {w.week: w for w in dora_figures(environment=env("production"), now=NOW).weeks}

    first, second = weeks["2026-03-02"], weeks["2026-03-09"]
    assert (first.successes, first.changes, first.change_failures) == (3, 4, 1)
    assert first.deployment_frequency_per_day == pytest.approx(3 / 7, abs=1e-4)
    assert (first.change_failure_rate, first.lead_time_hours_p50) == (0.25, 2.0)
    assert first.recovery_time_hours_p50 == 6.0
    assert (second.successes, second.changes, second.change_failures) == (3, 3, 2)
    assert second.change_failure_rate == pytest.approx(2 / 3, abs=1e-4)
    assert second.recovery_time_hours_p50 == 3.0


def test_dora__no_history__zero_frequency_and_no_rates(people):
    figures = dora_figures(environment=env("production"), now=NOW)

    assert figures.deployment_frequency_per_day == 0.0
    assert figures.change_failure_rate is None and figures.lead_time_hours["p50"] is None
    assert figures.weeks == []


def test_dora__aggregates__one_statement_whatever_the_history(history):
    production = env("production")

    with CaptureQueriesContext(connection) as captured:
        dora_figures(environment=production, now=NOW)

    statements = [q["sql"] for q in captured.captured_queries if "SAVEPOINT" not in q["sql"]]
    assert statements[0] == "SET LOCAL jit = off"
    assert len(statements) == 2 and statements[1].startswith("WITH facts")


def test_dora__counted_in_python__same_answers_as_the_sql(history):
    """The embedded SQLite default counts the same facts in Python (rollouts.dora.count_rows)."""
    period = Period(NOW - dt.timedelta(days=30), NOW)
    found = facts(dora_rows(env("production"), None), period)

    in_sql = count_in_sql(found, period)
    in_python = count_rows(list(found.values_list(*FACTS, named=True)), period)

    assert in_python[0] == in_sql[0]
    assert in_python[1] == in_sql[1]
    assert in_sql[0].percentiles == {"lead": [3 * 3600.0, 12 * 3600.0], "recovery": [4.5 * 3600]}


def test_percentile__as_percentile_cont__interpolates_between_ranks():
    """The embedded SQLite default computes percentiles here, as PostgreSQL would."""
    lead = [12, 1, 2, 10, 1, 12, 4, 2]

    assert (_percentile(lead, 0.5), _percentile(lead, 0.9)) == (3.0, 12.0)
    assert _percentile([1, 2, 2, 4, 12], 0.9) == pytest.approx(8.8)
    assert _percentile([], 0.5) is None
