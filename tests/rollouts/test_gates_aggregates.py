"""The embedded default (SQLite) aggregates fetched rows in Python: on the same rows it must
agree with PostgreSQL's own aggregates, percentiles and trusted subset included."""

import datetime as dt
import random

import pytest

from releasecontrol.models import Environment
from rollouts.aggregates import WindowRequest, _aggregate, percentile_cont, window_stats
from tests.factories import UserFactory
from tests.rollouts.factories import ReleaseFactory
from tests.rollouts.gate_samples import NOW, push

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("seed", "quantile"), [(1, 0.5), (2, 0.95), (3, 0.99), (4, 0.95)])
def test_window_stats__python_fallback__agrees_with_postgresql(seed, quantile):
    rng = random.Random(seed)
    release = ReleaseFactory(environment=Environment.objects.get(slug="production"))
    other = UserFactory()
    values = [rng.lognormvariate(0, 1) for _ in range(rng.randrange(5, 60))]
    totals = [float(rng.randrange(1, 100)) for _ in values]
    mine = push(release, values[::2], totals=totals[::2], by=release.requested_by, spacing=4)
    theirs = push(release, values[1::2], totals=totals[1::2], by=other, spacing=4)
    request = WindowRequest(
        release_id=release.pk,
        metric="error_rate",
        cohort="canary",
        start=NOW.replace(hour=11),
        end=NOW,
        quantile=quantile,
        untrusted=(release.requested_by_id,),
        want_values=True,
    )

    [stats] = window_stats([request])
    rows = [(s.value, s.total, s.submitted_by_id) for s in mine + theirs]
    python_all = _aggregate(request, rows)
    python_trusted = _aggregate(request, [r for r in rows if r[2] == other.pk])

    for db, py in ((stats.all, python_all), (stats.trusted, python_trusted)):
        assert db.count == py.count
        for name in ("avg", "min", "max", "sum", "quantile", "total_sum"):
            assert getattr(db, name) == pytest.approx(getattr(py, name)), name
        assert sorted(db.values) == pytest.approx(sorted(py.values))


def test_percentile_cont__interpolates_between_ranks():
    assert percentile_cont([1, 2, 3, 4], 0.5) == 2.5
    assert percentile_cont([10], 0.99) == 10
    assert percentile_cont([], 0.5) is None


def test_window_stats__on_postgresql__tells_the_newest_sample_inside_the_window():
    release = ReleaseFactory()
    push(release, [1.0, 2.0, 3.0], end=NOW - dt.timedelta(seconds=30))
    push(release, [9.0], end=NOW + dt.timedelta(seconds=5))  # after the window's end
    window = {"release_id": release.pk, "cohort": "canary", "end": NOW}
    start = NOW - dt.timedelta(minutes=5)

    seen, silent = window_stats(
        [
            WindowRequest(metric="error_rate", start=start, **window),
            WindowRequest(metric="latency_ms", start=start, **window),
        ]
    )

    assert (seen.all.count, seen.latest) == (3, NOW - dt.timedelta(seconds=30))
    assert (silent.all.count, silent.latest) == (0, None)
