"""gates_evaluate is set-wise: one aggregate query however many push gates, baselines and
production trust included."""

import pytest

from releasecontrol.models import Environment
from rollouts.gates import gates_evaluate
from rollouts.models import Gate, Outcome
from tests.factories import UserFactory
from tests.rollouts.factories import GateFactory, ReleaseFactory
from tests.rollouts.gate_samples import NOW, push

pytestmark = pytest.mark.django_db

BASELINES = [None, {"method": "ratio"}, {"method": "mann_whitney"}, {"method": "binomial"}]


def gates_for(count: int) -> list[Gate]:
    environments = list(Environment.objects.order_by("position"))
    editor = UserFactory(username="editor")
    for i in range(count):
        release = ReleaseFactory(environment=environments[i % len(environments)])
        release.plan_editors.add(editor)
        GateFactory(
            release=release,
            aggregate=["avg", "p95", "rate", "count", "max"][i % 5],
            baseline=BASELINES[i % len(BASELINES)],
            threshold=5,
        )
        push(release, [1, 2, 9], totals=[100, 100, 100])
        push(release, [1, 2, 3], cohort="control", totals=[100, 100, 100])
    return list(
        Gate.objects.select_related("release__environment").prefetch_related(
            "release__plan_editors"
        )
    )


@pytest.mark.parametrize("count", [5, 50])
def test_gates_evaluate__many_push_gates__one_query(count, django_assert_num_queries):
    gates = gates_for(count)

    with django_assert_num_queries(1):
        results = gates_evaluate(gates, now=NOW)

    assert set(results) == {gate.pk for gate in gates}
    assert {r.outcome for r in results.values()} <= {
        Outcome.SUCCESS,
        Outcome.FAILURE,
        Outcome.INCONCLUSIVE,
    }
    assert all(r.samples == 3 for r in results.values())


def test_gates_evaluate__no_gates__no_query(django_assert_num_queries):
    with django_assert_num_queries(0):
        assert gates_evaluate([], now=NOW) == {}
