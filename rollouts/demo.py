"""A demo release for the run command's embedded default (seed_demo). Idempotent: a second
run finds it and changes nothing.

The release manager starts `calling` 1.3.0 in staging and advances it to its canary stage
(through the release services, as a person would); the last two hours of metrics and the
gate evaluations the monitor kept are written as history, so the release's page opens on
charts with something in them.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import IO

from django.utils import timezone

from flags.models import Flag
from releasecontrol.models import Environment, User

from .models import GateEvaluation, MetricSample, Outcome, Release, ReleaseEvent
from .services import release_advance, release_create, release_start

DEMO_NAME = "calling"
DEMO_VERSION = "1.3.0"
HISTORY = dt.timedelta(hours=2)
SAMPLE_EVERY = dt.timedelta(seconds=30)
KEEP_EVERY = dt.timedelta(minutes=1)
PLAN = [
    {"name": "infrastructure", "mode": "off", "percentage": 0, "hold_seconds": 0},
    {"name": "canary", "mode": "percentage", "percentage": 5, "hold_seconds": 4 * 3600},
    {"name": "partial", "mode": "percentage", "percentage": 25, "hold_seconds": 3600},
    {"name": "full", "mode": "full", "percentage": 100},
]
GATES = [
    {
        "name": "errors",
        "metric": "error_rate",
        "aggregate": "avg",
        "comparator": ">",
        "threshold": 5,
        "window_seconds": 300,
        "min_samples": 3,
        "on_failure": "rollback",
    },
    {
        "name": "latency",
        "metric": "latency_p95_ms",
        "aggregate": "p95",
        "comparator": ">",
        "threshold": 800,
        "window_seconds": 600,
        "min_samples": 5,
        "on_failure": "halve",
        "baseline": {"cohort": "control", "method": "ratio", "ratio": 1.5},
    },
]


def _error_rate(k: int) -> float:
    """About 1.5%, with a bump towards 4% about an hour in (short of the gate)."""
    bump = 2.5 * math.exp(-(((k - 130) / 18) ** 2))
    return round(1.5 + 0.5 * math.sin(k / 7) + bump, 3)


def _latency(k: int, control: bool) -> float:
    base = 380.0 if control else 410.0
    return round(base + 40 * math.sin(k / 11) + (k * 37 % 23), 1)


def _history(release: Release, submitter: User, now: dt.datetime) -> None:
    """Samples every 30 s over the last two hours, and an evaluation per gate per minute."""
    begun = now - HISTORY
    count = int(HISTORY / SAMPLE_EVERY)
    samples = []
    for k in range(count):
        at = begun + SAMPLE_EVERY * (k + 1)
        common = {"environment": release.environment, "release": release, "time": at}
        common["submitted_by"] = submitter
        samples.append(MetricSample(metric="error_rate", value=_error_rate(k), **common))
        for cohort in ("canary", "control"):
            value = _latency(k, cohort == "control")
            samples.append(
                MetricSample(metric="latency_p95_ms", cohort=cohort, value=value, **common)
            )
    MetricSample.objects.bulk_create(samples)

    gates = {gate.name: gate for gate in release.gates.all()}
    evaluations = []
    minutes = int(HISTORY / KEEP_EVERY)
    for m in range(1, minutes + 1):
        at = begun + KEEP_EVERY * m
        k = int((at - begun) / SAMPLE_EVERY)
        errors, latency = gates["errors"], gates["latency"]
        window = [_error_rate(j) for j in range(max(0, k - 10), k)]
        if m >= 5 and len(window) >= errors.min_samples:
            value = sum(window) / len(window)
            evaluations.append(
                GateEvaluation(
                    gate=errors,
                    release=release,
                    stage_index=1,
                    evaluated_at=at,
                    outcome=Outcome.SUCCESS,
                    value=round(value, 3),
                    samples=len(window),
                    window_start=at - dt.timedelta(seconds=errors.window_seconds),
                    window_end=at,
                    threshold=errors.threshold,
                    source="push",
                    detail=f"avg(error_rate) {value:.3g} <= 5 over {len(window)} samples",
                )
            )
        canary = sorted(_latency(j, False) for j in range(max(0, k - 20), k))
        control = sorted(_latency(j, True) for j in range(max(0, k - 20), k))
        if m >= 10 and len(canary) >= latency.min_samples:
            p95, c95 = (
                canary[int(0.95 * (len(canary) - 1))],
                control[int(0.95 * (len(control) - 1))],
            )
            evaluations.append(
                GateEvaluation(
                    gate=latency,
                    release=release,
                    stage_index=1,
                    evaluated_at=at,
                    outcome=Outcome.SUCCESS,
                    value=p95,
                    samples=len(canary),
                    control_value=c95,
                    control_samples=len(control),
                    window_start=at - dt.timedelta(seconds=latency.window_seconds),
                    window_end=at,
                    threshold=latency.threshold,
                    source="push",
                    detail=f"p95 {p95:g} vs 1.5x control {c95:g}: within",
                )
            )
    GateEvaluation.objects.bulk_create(evaluations)


def seed_releases(out: IO[str]) -> None:
    manager = User.objects.filter(username="rita").first()
    staging = Environment.objects.filter(slug="staging").first()
    flag = Flag.objects.filter(key="calling").first()
    if manager is None or staging is None or flag is None:
        return
    existing = Release.objects.filter(name=DEMO_NAME, environment=staging).first()
    if existing is None:
        release = release_create(
            actor=manager,
            name=DEMO_NAME,
            version=DEMO_VERSION,
            environment=staging,
            flags=[flag],
            plan=PLAN,
            gates=GATES,
            dead_man_seconds=3600,
            reason="seed_demo: outbound calling to 5% of staging",
        )
        release = release_start(actor=manager, release=release, reason="seed_demo")
        release = release_advance(actor=manager, release=release, reason="seed_demo: canary")
        now = timezone.now()
        # The demo's history: the release began two hours ago (its timeline and stage times
        # moved back with the samples, so the charts line up).
        began, canary = now - HISTORY, now - HISTORY + dt.timedelta(minutes=2)
        ReleaseEvent.objects.filter(release=release, stage_index=0).update(at=began)
        ReleaseEvent.objects.filter(release=release, stage_index=1).update(at=canary)
        ReleaseEvent.objects.filter(release=release, kind="created").update(
            at=began - dt.timedelta(minutes=5)
        )
        Release.objects.filter(pk=release.pk).update(
            created_at=began - dt.timedelta(minutes=5),
            started_at=began,
            stage_entered_at=canary,
            hold_started_at=canary,
        )
        # Metrics come in from the pipeline's account, as they would.
        submitter = User.objects.filter(username="ci-bot").first() or manager
        _history(release, submitter, now)
        existing = release
    out.write(f"Demo release: {DEMO_NAME} {DEMO_VERSION} in staging (/releases/{existing.pk}/)\n")
