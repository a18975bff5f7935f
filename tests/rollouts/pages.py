"""Releases as the pages show them, built directly from factories (the pages only read; the
services that write these rows are tested on their own)."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from releasecontrol.models import Environment, User
from rollouts.models import MetricSample, Release
from tests.factories import FlagFactory
from tests.rollouts.factories import (
    GateEvaluationFactory,
    GateFactory,
    ReleaseEventFactory,
    ReleaseFactory,
    ReleaseFlagFactory,
    StageFactory,
)

PLAN = [
    ("infrastructure", "off", 0, 0, False),
    ("canary", "percentage", 5, 3600, False),
    ("partial", "percentage", 25, 3600, True),
    ("full", "full", 100, 0, False),
]


def live_release(
    *,
    environment: str = "staging",
    requested_by: User | None = None,
    minutes: int = 30,
    evaluations: int = 10,
    samples: int = 60,
    status: str = "in_progress",
    name: str | None = None,
    baseline: bool = False,
) -> Release:
    """A release on its canary stage for `minutes`, two gates (one with a control baseline
    when asked), `samples` samples per gate metric and `evaluations` evaluations per gate."""
    now = timezone.now()
    begun = now - dt.timedelta(minutes=minutes)
    extra = {"requested_by": requested_by} if requested_by else {}
    if name:
        extra["name"] = name
    release = ReleaseFactory(
        environment=Environment.objects.get(slug=environment),
        status=status,
        current_stage_index=1 if status in ("in_progress", "paused") else None,
        started_at=begun,
        stage_entered_at=begun + dt.timedelta(minutes=1),
        hold_started_at=begun + dt.timedelta(minutes=1),
        paused_reason="errors failing" if status == "paused" else "",
        **extra,
    )
    ReleaseFlagFactory(release=release, flag=FlagFactory())
    for index, (stage_name, mode, percentage, hold, needs_go) in enumerate(PLAN):
        StageFactory(
            release=release,
            index=index,
            name=stage_name,
            mode=mode,
            percentage=percentage,
            hold_seconds=hold,
            needs_go=needs_go,
        )
    ReleaseEventFactory(release=release, kind="started", at=begun, stage_index=0, mode="off")
    ReleaseEventFactory(
        release=release,
        kind="advanced",
        at=begun + dt.timedelta(minutes=1),
        stage_index=1,
        mode="percentage",
        percentage=5,
        automatic=True,
        actor=User.system(),
    )
    errors = GateFactory(release=release, name="errors", metric="error_rate", threshold=5)
    latency = GateFactory(
        release=release,
        name="latency",
        metric="latency_p95",
        aggregate="p95",
        threshold=800,
        on_failure="halve",
        baseline={"cohort": "control", "method": "ratio", "ratio": 1.5} if baseline else None,
    )
    step = dt.timedelta(seconds=max(1, minutes * 60 // max(samples, 1)))
    MetricSample.objects.bulk_create(
        MetricSample(
            environment=release.environment,
            release=release,
            metric=metric,
            cohort=cohort,
            value=value + (i % 7),
            time=begun + step * (i + 1),
            submitted_by=User.system(),
        )
        for i in range(samples)
        for metric, value in (("error_rate", 1.0), ("latency_p95", 400.0))
        for cohort in (("canary", "control") if baseline else ("canary",))
    )
    every = dt.timedelta(seconds=max(1, minutes * 60 // max(evaluations, 1)))
    for i in range(evaluations):
        at = begun + every * (i + 1)
        GateEvaluationFactory(gate=errors, evaluated_at=at, value=1.0 + i % 3, stage_index=1)
        GateEvaluationFactory(
            gate=latency,
            evaluated_at=at,
            value=420.0,
            control_value=400.0 if baseline else None,
            control_samples=12 if baseline else None,
            outcome="failure" if i == evaluations - 1 else "success",
            stage_index=1,
        )
    return release
