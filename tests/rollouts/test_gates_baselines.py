"""Baseline statistics with known answers: hand-computed exact p-values, clearly separated
cohorts that fail, clearly identical cohorts that pass, and scipy's own figures on the same
numbers."""

import pytest
from scipy import stats

from releasecontrol.models import Environment
from rollouts.models import Outcome
from tests.rollouts.factories import GateFactory, ReleaseFactory
from tests.rollouts.gate_samples import outcome_of, push

pytestmark = pytest.mark.django_db


@pytest.fixture
def release():
    return ReleaseFactory(environment=Environment.objects.get(slug="staging"))


def baseline_gate(release, method, *, comparator=">", confidence=0.95, **fields):
    fields.setdefault("min_samples", 3)
    return GateFactory(
        release=release,
        comparator=comparator,
        baseline={"cohort": "control", "method": method, "confidence": confidence},
        **fields,
    )


# --- ratio -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("canary", "control", "ratio", "outcome", "threshold"),
    [
        ([3, 3, 3], [1, 1, 1], 1.5, Outcome.FAILURE, 1.5),  # 3 > 1.5 x 1
        ([1.4, 1.4, 1.4], [1, 1, 1], 1.5, Outcome.SUCCESS, 1.5),
        ([1.6, 1.6, 1.6], [1, 1, 1], 1.5, Outcome.FAILURE, 1.5),
        ([5, 5, 5], [2, 2, 2], 3.0, Outcome.SUCCESS, 6.0),  # 5 is not > 3 x 2
    ],
)
def test_ratio_baseline__canary_against_ratio_times_control(
    release, canary, control, ratio, outcome, threshold
):
    gate = GateFactory(release=release, min_samples=3, baseline={"method": "ratio", "ratio": ratio})
    push(release, canary)
    push(release, control, cohort="control")

    result = outcome_of(gate)

    assert result.outcome == outcome, result.detail
    assert result.threshold == pytest.approx(threshold)
    assert result.control_value == pytest.approx(sum(control) / 3)
    assert result.value == pytest.approx(sum(canary) / 3)


# --- Mann-Whitney U ----------------------------------------------------------------------------

LOW = [100.0 + i for i in range(30)]
HIGH = [200.0 + i for i in range(30)]


def test_mann_whitney__clearly_slower_canary__fails_with_scipys_p(release):
    gate = baseline_gate(release, "mann_whitney", aggregate="p95")
    push(release, HIGH, spacing=5)
    push(release, LOW, cohort="control", spacing=5)

    result = outcome_of(gate)

    assert result.outcome == Outcome.FAILURE, result.detail
    expected = stats.mannwhitneyu(HIGH, LOW, alternative="greater").pvalue
    assert result.p_value == pytest.approx(expected)
    assert result.p_value < 1e-9  # every canary value above every control value
    assert (result.samples, result.control_samples) == (30, 30)


def test_mann_whitney__identical_cohorts__passes(release):
    gate = baseline_gate(release, "mann_whitney")
    push(release, LOW, spacing=5)
    push(release, LOW, cohort="control", spacing=5)

    result = outcome_of(gate)

    assert result.outcome == Outcome.SUCCESS, result.detail
    assert result.p_value > 0.4


def test_mann_whitney__faster_canary_on_a_higher_is_worse_gate__passes(release):
    gate = baseline_gate(release, "mann_whitney")
    push(release, LOW, spacing=5)
    push(release, HIGH, cohort="control", spacing=5)

    result = outcome_of(gate)

    assert result.outcome == Outcome.SUCCESS
    assert result.p_value > 0.99


def test_mann_whitney__lower_is_worse_comparator__tests_the_other_tail(release):
    gate = baseline_gate(release, "mann_whitney", comparator="<")
    push(release, LOW, spacing=5)  # throughput fell
    push(release, HIGH, cohort="control", spacing=5)

    assert outcome_of(gate).outcome == Outcome.FAILURE


# --- exact binomial (Fisher) -----------------------------------------------------------------


def test_binomial__three_of_three_against_none_of_three__hand_computed_p(release):
    # Fisher's one-sided p for [[3, 0], [0, 3]]: P(X = 3) = 1 / C(6, 3) = 1/20 = 0.05.
    gate = baseline_gate(release, "binomial", min_samples=1)
    push(release, [3], totals=[3])
    push(release, [0], cohort="control", totals=[3])

    result = outcome_of(gate)

    assert result.p_value == pytest.approx(0.05)
    assert result.outcome == Outcome.SUCCESS  # 0.05 is not below 1 - 0.95

    gate.baseline = {**gate.baseline, "confidence": 0.9}
    gate.save()
    assert outcome_of(gate).outcome == Outcome.FAILURE  # below 0.1


def test_binomial__clearly_more_errors__fails(release):
    gate = baseline_gate(release, "binomial")
    push(release, [20, 15, 15], totals=[300, 300, 400])  # 50 / 1000
    push(release, [3, 4, 3], cohort="control", totals=[300, 300, 400])  # 10 / 1000

    result = outcome_of(gate)

    assert result.outcome == Outcome.FAILURE
    assert (result.value, result.control_value) == (pytest.approx(0.05), pytest.approx(0.01))
    expected = stats.fisher_exact([[50, 950], [10, 990]], alternative="greater")[1]
    assert result.p_value == pytest.approx(expected)
    assert result.p_value < 1e-6


def test_binomial__same_error_proportion__passes(release):
    gate = baseline_gate(release, "binomial")
    push(release, [10, 10, 10], totals=[1000, 1000, 1000])
    push(release, [10, 10, 10], cohort="control", totals=[1000, 1000, 1000])

    result = outcome_of(gate)

    assert result.outcome == Outcome.SUCCESS
    assert result.p_value > 0.4


def test_binomial__sample_without_total__error_naming_it(release):
    gate = baseline_gate(release, "binomial")
    push(release, [1, 1, 1], totals=[10, None, 10])
    push(release, [1, 1, 1], cohort="control", totals=[10, 10, 10])

    result = outcome_of(gate)

    assert result.outcome == Outcome.ERROR
    assert "needs `total` on every sample: 1 of 3 canary samples" in result.detail


def test_binomial__fractional_events__error_saying_value_is_a_count(release):
    gate = baseline_gate(release, "binomial")
    push(release, [0.5, 1, 1], totals=[10, 10, 10])
    push(release, [1, 1, 1], cohort="control", totals=[10, 10, 10])

    result = outcome_of(gate)

    assert result.outcome == Outcome.ERROR
    assert "is not a whole number" in result.detail


# --- exact Poisson (conditional binomial) ----------------------------------------------------


def test_poisson__three_events_against_none_equal_exposure__hand_computed_p(release):
    # Given 3 events in all and equal exposure, P(all 3 in the canary) = 0.5 ** 3 = 0.125.
    gate = baseline_gate(release, "poisson", min_samples=1)
    push(release, [3], totals=[60])
    push(release, [0], cohort="control", totals=[60])

    result = outcome_of(gate)

    assert result.p_value == pytest.approx(0.125)
    assert result.outcome == Outcome.SUCCESS


def test_poisson__clearly_higher_rate__fails(release):
    gate = baseline_gate(release, "poisson")
    push(release, [10, 12, 8], totals=[100, 100, 100])  # 30 in 300
    push(release, [1, 0, 1], cohort="control", totals=[100, 100, 100])  # 2 in 300

    result = outcome_of(gate)

    assert result.outcome == Outcome.FAILURE
    assert result.p_value == pytest.approx(
        stats.binomtest(30, 32, 0.5, alternative="greater").pvalue
    )


def test_poisson__same_rate_unequal_exposure__passes(release):
    gate = baseline_gate(release, "poisson")
    push(release, [5, 5, 5], totals=[100, 100, 100])  # 15 in 300: 0.05 per unit
    push(release, [10, 10, 10], cohort="control", totals=[200, 200, 200])  # 30 in 600

    result = outcome_of(gate)

    assert result.outcome == Outcome.SUCCESS
    assert result.value == pytest.approx(result.control_value)


def test_poisson__no_events_anywhere__passes(release):
    gate = baseline_gate(release, "poisson")
    push(release, [0, 0, 0], totals=[100, 100, 100])
    push(release, [0, 0, 0], cohort="control", totals=[100, 100, 100])

    result = outcome_of(gate)

    assert (result.outcome, result.p_value) == (Outcome.SUCCESS, 1.0)


def test_baseline__unknown_method__error_naming_the_methods(release):
    gate = GateFactory(release=release, baseline={"method": "t_test"})
    push(release, [1, 1, 1])

    result = outcome_of(gate)

    assert result.outcome == Outcome.ERROR
    assert "ratio, mann_whitney, binomial, poisson" in result.detail
