"""Helpers of the gate tests: recorded samples at known times, a gate's outcome now."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from rollouts.gates import GateResult, gates_evaluate
from rollouts.models import Gate, MetricSample, Release

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


def push(
    release: Release,
    values: Sequence[float],
    *,
    metric: str = "error_rate",
    cohort: str = "canary",
    by=None,
    end: dt.datetime = NOW,
    spacing: float = 10.0,
    totals: Sequence[float | None] | None = None,
) -> list[MetricSample]:
    """Samples `spacing` seconds apart, the last at `end` (so all inside a window ending
    there that is long enough), submitted by `by` (default: the system actor)."""
    from releasecontrol.models import User

    submitter = by or User.system()
    rows = [
        MetricSample(
            environment=release.environment,
            release=release,
            metric=metric,
            cohort=cohort,
            value=value,
            total=totals[i] if totals is not None else None,
            time=end - dt.timedelta(seconds=spacing * (len(values) - 1 - i)),
            submitted_by=submitter,
        )
        for i, value in enumerate(values)
    ]
    return MetricSample.objects.bulk_create(rows)


def loaded(gate: Gate) -> Gate:
    """The gate as the monitor reads it: release, environment and plan editors loaded."""
    return (
        Gate.objects.select_related("release__environment")
        .prefetch_related("release__plan_editors")
        .get(pk=gate.pk)
    )


def outcome_of(gate: Gate, now: dt.datetime = NOW) -> GateResult:
    return gates_evaluate([loaded(gate)], now=now)[gate.pk]
