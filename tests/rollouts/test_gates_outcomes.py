"""Gate evaluation as a table: each outcome, each aggregate (hand-computed), the window's
bounds, the no-data policies in each tier, the consecutive-failure rule, the error limit,
baselines with too few samples, and trust in production."""

import datetime as dt

import pytest

from releasecontrol.models import Environment
from rollouts.gates import GateCounters, gate_step
from rollouts.models import Outcome
from tests.factories import UserFactory
from tests.rollouts.factories import GateFactory, ReleaseFactory
from tests.rollouts.gate_samples import NOW, outcome_of, push

pytestmark = pytest.mark.django_db

S, F, I, N, E = (  # noqa: E741
    Outcome.SUCCESS,
    Outcome.FAILURE,
    Outcome.INCONCLUSIVE,
    Outcome.NO_DATA,
    Outcome.ERROR,
)


def release_in(slug: str, **fields):
    return ReleaseFactory(environment=Environment.objects.get(slug=slug), **fields)


# --- Each outcome ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "comparator", "threshold", "min_samples", "outcome", "value"),
    [
        ([7, 8, 9], ">", 5, 3, F, 8.0),  # avg 8 > 5
        ([1, 2, 3], ">", 5, 3, S, 2.0),
        ([5, 5, 5], ">", 5, 3, S, 5.0),  # on the threshold is not above it
        ([5, 5, 5], ">=", 5, 3, F, 5.0),
        ([10, 20, 30], "<", 50, 3, F, 20.0),  # throughput below its floor
        ([60, 70, 80], "<", 50, 3, S, 70.0),
        ([50, 50, 50], "<=", 50, 3, F, 50.0),
        ([7, 8], ">", 5, 3, I, 7.5),  # fewer than min_samples: inconclusive, even if bad
        ([1, 2], ">", 5, 3, I, 1.5),  # ... and never a pass
        ([], ">", 5, 3, N, None),
    ],
)
def test_gate__samples_in_window__outcome_from_the_table(
    values, comparator, threshold, min_samples, outcome, value
):
    release = release_in("staging")
    gate = GateFactory(
        release=release, comparator=comparator, threshold=threshold, min_samples=min_samples
    )
    push(release, values)

    result = outcome_of(gate)

    assert result.outcome == outcome, result.detail
    assert result.value == (pytest.approx(value) if value is not None else None)
    assert result.samples == len(values)
    assert result.threshold == threshold
    assert result.source == "push"
    assert result.window_end == NOW
    assert result.window_start == NOW - dt.timedelta(seconds=300)


def test_gate__failure__detail_names_aggregate_value_threshold_and_samples():
    release = release_in("staging")
    gate = GateFactory(release=release, metric="error_rate", threshold=5)
    push(release, [7.0, 7.2, 7.4])

    result = outcome_of(gate)

    assert result.detail == "avg(error_rate) 7.2 > 5 over 3 samples"


# --- Each aggregate, hand-computed --------------------------------------------------------
# values 1, 2, 3, 4, 10 (sorted); percentile_cont interpolates between ranks:
# p50: rank 0.5 * 4 = 2 -> 3; p95: rank 3.8 -> 4 + 0.8 * (10 - 4) = 8.8;
# p99: rank 3.96 -> 4 + 0.96 * 6 = 9.76; rate = sum 20 / 300 s.


@pytest.mark.parametrize(
    ("aggregate", "expected"),
    [
        ("avg", 4.0),
        ("min", 1.0),
        ("max", 10.0),
        ("sum", 20.0),
        ("count", 5.0),
        ("p50", 3.0),
        ("p95", 8.8),
        ("p99", 9.76),
        ("rate", 20.0 / 300.0),
    ],
)
def test_gate__each_aggregate__hand_computed_value(aggregate, expected):
    release = release_in("staging")
    gate = GateFactory(release=release, aggregate=aggregate, threshold=1000, min_samples=5)
    push(release, [3, 10, 1, 4, 2])

    result = outcome_of(gate)

    assert result.value == pytest.approx(expected)
    assert result.outcome == S


@pytest.mark.parametrize(("aggregate", "threshold"), [("p95", 8.7), ("rate", 0.06)])
def test_gate__aggregate_just_over_threshold__fails(aggregate, threshold):
    release = release_in("staging")
    gate = GateFactory(release=release, aggregate=aggregate, threshold=threshold, min_samples=5)
    push(release, [3, 10, 1, 4, 2])

    assert outcome_of(gate).outcome == F


def test_gate__window_bounds__start_excluded_end_included_future_ignored():
    release = release_in("staging")
    gate = GateFactory(release=release, aggregate="sum", threshold=1000, min_samples=1)
    push(release, [1000], end=NOW - dt.timedelta(seconds=300))  # exactly at the start: out
    push(release, [1], end=NOW - dt.timedelta(seconds=299))
    push(release, [2], end=NOW)  # exactly now: in
    push(release, [500], end=NOW + dt.timedelta(seconds=1))  # after now: out
    push(release, [700], metric="latency")  # another metric
    push(release, [900], cohort="control")  # another cohort
    push(release_in("staging"), [800])  # another release

    result = outcome_of(gate)

    assert (result.value, result.samples) == (3.0, 2)


# --- No-data policies x environment tiers ---------------------------------------------------


@pytest.mark.parametrize(
    ("tier", "policy", "outcome", "failures_after", "no_data_action", "act"),
    [
        ("development", "fail", N, 3, "fail", True),
        ("staging", "fail", N, 3, "fail", True),
        ("production", "fail", N, 3, "fail", True),
        ("development", "pause", N, 2, "pause", False),
        ("staging", "pause", N, 2, "pause", False),
        ("production", "pause", N, 2, "pause", False),
        ("development", "pass", S, 0, None, False),  # a success: resets the count
        ("staging", "pass", S, 0, None, False),
        ("production", "pass", N, 2, None, False),  # never a success: neither counts nor resets
    ],
)
def test_gate__no_data__policy_per_tier(tier, policy, outcome, failures_after, no_data_action, act):
    gate = GateFactory(release=release_in(tier), no_data=policy, failures_to_act=3)

    result = outcome_of(gate)
    step = gate_step(gate, GateCounters(2, 1), result.outcome, error_limit=4)

    assert result.outcome == outcome, result.detail
    assert result.samples == 0 and result.value is None
    assert f"`{policy}`" in result.detail
    assert step.counters == GateCounters(failures_after, 0)
    assert step.no_data_action == no_data_action
    assert step.act is act


def test_gate_step__no_data_pass_in_production_raw_outcome__neither_counts_nor_resets():
    gate = GateFactory(release=release_in("production"), no_data="pass")

    step = gate_step(gate, GateCounters(2, 0), N, error_limit=4)

    assert step.counters == GateCounters(2, 0)
    assert (step.act, step.no_data_action) == (False, None)


# --- The consecutive-failure rule ------------------------------------------------------------


@pytest.mark.parametrize(
    ("failures_to_act", "outcomes", "acts_at", "final_failures"),
    [
        (1, [F], [0], 1),
        (3, [F, F, S, F, F, F], [5], 3),  # a success resets: three more needed
        (3, [F, I, F, N, E, F], [5], 3),  # inconclusive, no data (pause), error: no reset
        (3, [F, F, F, F], [2, 3], 4),  # it keeps asking while it keeps failing
        (2, [S, F, S, F, S], [], 0),
        (2, [I, I, N, E, E], [], 0),  # nothing counts without a failure
    ],
)
def test_gate_step__outcome_sequence__acts_on_nth_consecutive_failure(
    failures_to_act, outcomes, acts_at, final_failures
):
    gate = GateFactory(release=release_in("staging"), failures_to_act=failures_to_act)
    counters = GateCounters(0, 0)
    acted = []
    for i, outcome in enumerate(outcomes):
        step = gate_step(gate, counters, outcome, error_limit=4)
        counters = step.counters
        if step.act:
            acted.append(i)

    assert acted == acts_at
    assert counters.consecutive_failures == final_failures


def test_gate_step__advisory_gate__never_acts_or_pauses():
    gate = GateFactory(release=release_in("staging"), advisory=True, no_data="pause")
    counters = GateCounters(0, 0)
    steps = []
    for outcome in [F, F, E, E, E, E, N]:
        steps.append(gate_step(gate, counters, outcome, error_limit=4))
        counters = steps[-1].counters

    assert not any(s.act or s.errors_exhausted or s.no_data_action for s in steps)
    assert counters == GateCounters(2, 0)  # still counted, for the record


# --- The error limit -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcomes", "exhausted_at"),
    [
        ([E, E, E, E], [3]),
        ([E, E, E, E, E], [3, 4]),
        ([E, E, E, I, E, E, E], []),  # a run of errors ends with any other outcome
        ([E, E, S, E, E, E, E], [6]),
    ],
)
def test_gate_step__consecutive_errors__pause_at_the_limit(outcomes, exhausted_at):
    gate = GateFactory(release=release_in("staging"))
    counters = GateCounters(1, 0)
    exhausted = []
    for i, outcome in enumerate(outcomes):
        step = gate_step(gate, counters, outcome, error_limit=4)
        assert not step.act  # never acts blindly
        counters = step.counters
        if step.errors_exhausted:
            exhausted.append(i)

    assert exhausted == exhausted_at


def test_gate_step__errors__leave_the_failure_count_alone():
    gate = GateFactory(release=release_in("staging"), failures_to_act=2)

    step = gate_step(gate, GateCounters(1, 2), E, error_limit=4)

    assert step.counters == GateCounters(1, 3)


# --- Baselines with too few samples per cohort ------------------------------------------------


@pytest.mark.parametrize(
    ("canary", "control", "outcome"),
    [
        ([9, 9, 9, 9, 9], [1, 1], I),  # plenty of canary, too little control
        ([9, 9], [1, 1, 1, 1, 1], I),  # the other way round
        ([], [1, 1, 1, 1, 1], N),  # no canary at all: no data
        ([9, 9, 9], [1, 1, 1], F),  # 9 > 1.5 x 1
        ([1, 1, 1], [1, 1, 1], S),
    ],
)
def test_gate__ratio_baseline_per_cohort_min_samples__outcome(canary, control, outcome):
    release = release_in("staging")
    gate = GateFactory(
        release=release, min_samples=3, baseline={"cohort": "control", "method": "ratio"}
    )
    push(release, canary)
    push(release, control, cohort="control")

    result = outcome_of(gate)

    assert result.outcome == outcome, result.detail
    assert result.control_samples == len(control)


@pytest.mark.parametrize("method", ["mann_whitney", "binomial", "poisson"])
def test_gate__statistical_baseline_too_few_control__inconclusive_never_a_pass(method):
    release = release_in("staging")
    gate = GateFactory(release=release, min_samples=5, baseline={"method": method})
    push(release, [1] * 20, totals=[100] * 20)
    push(release, [1] * 4, cohort="control", totals=[100] * 4)

    result = outcome_of(gate)

    assert result.outcome == I
    assert "at least 5 needed in each cohort" in result.detail


# --- Trust in production ---------------------------------------------------------------------


@pytest.fixture
def monitoring():
    return UserFactory(username="monitoring")


@pytest.mark.parametrize(
    ("tier", "submitter", "values", "outcome"),
    [
        ("production", "requester", [9, 9, 9], F),  # failure evidence counts from anyone
        ("production", "requester", [1, 1, 1], I),  # ... a success does not
        ("production", "editor", [1, 1, 1], I),
        ("production", "monitoring", [1, 1, 1], S),
        ("production", "monitoring", [9, 9, 9], F),
        ("staging", "requester", [1, 1, 1], S),  # outside production anyone counts
        ("development", "editor", [1, 1, 1], S),
    ],
)
def test_gate__trust__who_submitted_decides_what_counts(
    tier, submitter, values, outcome, monitoring
):
    editor = UserFactory(username="editor")
    release = release_in(tier)
    release.plan_editors.add(editor)
    gate = GateFactory(release=release, min_samples=3)
    by = {"requester": release.requested_by, "editor": editor, "monitoring": monitoring}
    push(release, values, by=by[submitter])

    result = outcome_of(gate)

    assert result.outcome == outcome, result.detail


def test_gate__production_requester_dilutes_bad_trusted_samples__still_fails(monitoring):
    release = release_in("production")
    gate = GateFactory(release=release, min_samples=3)
    push(release, [0] * 30, by=release.requested_by, spacing=5)  # all samples: avg 0.9
    push(release, [9, 9, 9], by=monitoring, end=NOW - dt.timedelta(seconds=1))

    result = outcome_of(gate)

    assert result.outcome == F
    assert result.samples == 3
    assert "other than the requester and plan editors" in result.detail


def test_gate__production_requester_only_good_samples__detail_says_why_inconclusive():
    release = release_in("production")
    gate = GateFactory(release=release, min_samples=3)
    push(release, [1, 1, 1, 1], by=release.requested_by)

    result = outcome_of(gate)

    assert result.outcome == I
    assert "only 0 come from accounts other than the requester" in result.detail


def test_gate__production_baseline_requester_control__cannot_make_a_success(monitoring):
    release = release_in("production")
    gate = GateFactory(release=release, min_samples=3, baseline={"method": "ratio"})
    push(release, [2, 2, 2], by=monitoring)
    push(release, [2, 2, 2], cohort="control", by=release.requested_by)

    assert outcome_of(gate).outcome == I

    push(release, [2, 2, 2], cohort="control", by=monitoring, end=NOW - dt.timedelta(seconds=1))
    assert outcome_of(gate).outcome == S
