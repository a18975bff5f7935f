"""Gate replay: run a gate (saved, or edited and not saved) over a release's recorded samples
of a past period, evaluation by evaluation, through the same window aggregate
(rollouts/aggregates.py, one query for every point), the same outcome rules and the same
gate_step as the monitor, and say when it would first have acted and how.

A Prometheus gate's history is in Prometheus: replay asks it for the period in one range
query (`/api/v1/query_range`, the replay's step as its step) and judges each value as the
monitor judges an instant answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings

from rollouts.aggregates import window_stats
from rollouts.gates import (
    GateCounters,
    GateResult,
    gate_step,
    prometheus_result,
    push_requests,
    push_result,
    untrusted_submitters,
)
from rollouts.models import Gate, Outcome, Release
from rollouts.presets import gate_from_spec
from rollouts.prometheus import query_range_values

MAX_POINTS = 2000
DEFAULT_STEP_SECONDS = 10  # the monitor's default interval, when GATE_MONITOR_INTERVAL is unset


class ReplayError(ValueError):
    """The replay cannot run as asked (a sentence for people)."""


@dataclass(frozen=True, kw_only=True)
class ReplayPoint:
    time: datetime
    result: GateResult
    counters: GateCounters
    # What the monitor would have done here: "rollback", "halve", "pause", "review" (the
    # gate's action), "pause" for the error limit or the no-data policy, "advisory alert",
    # or "" for nothing.
    action: str = ""

    @property
    def outcome(self) -> str:
        return self.result.outcome

    @property
    def value(self) -> float | None:
        return self.result.value

    @property
    def samples(self) -> int:
        return self.result.samples


@dataclass(frozen=True, kw_only=True)
class ReplayResult:
    gate: Gate
    start: datetime
    end: datetime
    step_seconds: int
    points: list[ReplayPoint] = field(default_factory=list)
    acted_at: datetime | None = None  # the first point with an action
    action: str | None = None
    reason: str = ""  # why it would have acted (the evaluation's detail)

    @property
    def outcome_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(Outcome.values, 0)
        for point in self.points:
            counts[point.outcome] += 1
        return counts


def replay_step(start: datetime, end: datetime, step_seconds: int | None = None) -> int:
    """The step between evaluations: the monitor's interval, coarser when the period would
    need more than MAX_POINTS evaluations."""
    step = int(step_seconds or getattr(settings, "GATE_MONITOR_INTERVAL", DEFAULT_STEP_SECONDS))
    span = (end - start).total_seconds()
    return max(1, step, math.ceil(span / (MAX_POINTS - 1)))


def _action(gate: Gate, step, outcome: str) -> str:
    if step.act:
        return gate.on_failure
    if step.errors_exhausted or step.no_data_action == "pause":
        return "pause"
    counted = outcome == Outcome.FAILURE or step.no_data_action == "fail"
    if gate.advisory and counted and step.counters.consecutive_failures >= gate.failures_to_act:
        return "advisory alert"
    return ""


def gate_replay(
    *,
    release: Release,
    gate: Gate | dict[str, Any],
    start: datetime,
    end: datetime,
    step_seconds: int | None = None,
) -> ReplayResult:
    """Evaluate `gate` every step from `start` to `end` over the recorded samples, from zero
    counters, and report each evaluation and the first action it would have taken."""
    if isinstance(gate, dict):
        gate = gate_from_spec(release=release, spec=gate)
    if gate.release_id is None:
        gate.release = release
    elif gate.release_id != release.pk:
        raise ReplayError("the gate belongs to another release")
    if end <= start:
        raise ReplayError("the period's end must come after its start")
    step = replay_step(start, end, step_seconds)
    count = int((end - start).total_seconds() // step) + 1
    times = [start + timedelta(seconds=step * k) for k in range(count)]
    results = _prometheus_results(gate, times, step) if gate.promql else _push_results(gate, times)

    limit = settings.GATE_ERROR_LIMIT
    counters = GateCounters(consecutive_failures=0, consecutive_errors=0)
    points: list[ReplayPoint] = []
    first: ReplayPoint | None = None
    for time, result in zip(times, results, strict=True):
        step_taken = gate_step(gate, counters, result.outcome, error_limit=limit)
        counters = step_taken.counters
        point = ReplayPoint(
            time=time,
            result=result,
            counters=counters,
            action=_action(gate, step_taken, result.outcome),
        )
        points.append(point)
        if first is None and point.action and point.action != "advisory alert":
            first = point
    return ReplayResult(
        gate=gate,
        start=start,
        end=end,
        step_seconds=step,
        points=points,
        acted_at=first.time if first else None,
        action=first.action if first else None,
        reason=first.result.detail if first else "",
    )


def _push_results(gate: Gate, times: list[datetime]) -> list[GateResult]:
    """Each time's result over the recorded samples: one window aggregate for them all."""
    untrusted = untrusted_submitters(gate)
    requests, spans = [], []
    for time in times:
        point_requests = push_requests(gate, now=time, untrusted=untrusted)
        spans.append((len(requests), len(point_requests)))
        requests.extend(point_requests)
    stats = window_stats(requests)
    return [
        push_result(gate, stats[offset : offset + size], now=time)
        for time, (offset, size) in zip(times, spans, strict=True)
    ]


def _prometheus_results(gate: Gate, times: list[datetime], step: int) -> list[GateResult]:
    """Each time's result from the gate's PromQL as Prometheus answers it for that time:
    one range query for the whole period."""
    answers = query_range_values(gate.promql, start=times[0], step_seconds=step, count=len(times))
    return [
        prometheus_result(gate, now=time, answer=answer)
        for time, answer in zip(times, answers, strict=True)
    ]
