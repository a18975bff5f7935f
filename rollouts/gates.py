"""Gate evaluation: what one evaluation of a gate decides, and what a run of them means.

`gates_evaluate` answers every gate at once (one aggregate query for all pushed-metric gates,
one HTTP query per Prometheus gate); `gate_step` applies an outcome to a gate's running
counters (the Nth-consecutive-failure rule, the error limit, the no-data policy). Both are
free of writes: the monitor records evaluations and calls the release services. The rules
are tabled in docs/gates.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from rollouts import prometheus
from rollouts.aggregates import QUANTILES, WindowRequest, WindowStats, window_stats
from rollouts.baselines import BaselineError, baseline_of, breaches, compare
from rollouts.models import Cohort, Gate, NoData, Outcome

PROMETHEUS_PARALLEL = 8  # Prometheus gates queried at once


@dataclass(frozen=True, kw_only=True)
class GateResult:
    gate_id: int
    outcome: str  # rollouts.models.Outcome value
    value: float | None  # the aggregate (canary cohort), or the ratio/statistic's input
    samples: int  # canary samples behind `value`
    control_value: float | None
    control_samples: int | None
    p_value: float | None
    window_start: datetime
    window_end: datetime
    threshold: float
    source: str  # "push" or "prometheus: <expr>"
    detail: str  # a sentence a person reads: "avg(error_rate) 7.2 > 5 over 12 samples"

    def as_dict(self) -> dict:
        """JSON-ready (audit evidence, timeline events)."""
        data = asdict(self)
        data["window_start"] = self.window_start.isoformat()
        data["window_end"] = self.window_end.isoformat()
        return data


def gates_evaluate(
    gates: Sequence[Gate],
    *,
    now: datetime,
    newest: dict[tuple[int, str], datetime] | None = None,
) -> dict[int, GateResult]:
    """All gates at once: one aggregate query for every push gate (rollouts/aggregates.py),
    one HTTP query per Prometheus gate. Window = (now - window_seconds, now]. Trust: in
    production a success counts only samples whose submitter is neither the release's
    requested_by nor in its plan_editors (failure evidence counts from anyone). Gates come
    with release, release.environment and release.plan_editors loaded (the caller's query).

    `newest`, when given, is filled with the newest canary sample time the windows saw per
    (release id, metric) where the aggregate tells it (PostgreSQL): the dead man's switch
    needs no query of its own for those."""
    push = [gate for gate in gates if not gate.promql]
    pulled = [gate for gate in gates if gate.promql]
    results: dict[int, GateResult] = {}

    requests: list[WindowRequest] = []
    spans: list[tuple[Gate, int, int]] = []
    untrusted: dict[int, tuple[int, ...]] = {}  # per release: its gates share it
    for gate in push:
        if gate.release_id not in untrusted:
            untrusted[gate.release_id] = untrusted_submitters(gate)
        gate_requests = push_requests(gate, now=now, untrusted=untrusted[gate.release_id])
        spans.append((gate, len(requests), len(gate_requests)))
        requests.extend(gate_requests)
    stats = window_stats(requests)
    for gate, first, count in spans:
        results[gate.id] = push_result(gate, stats[first : first + count], now=now)
        latest = stats[first].latest  # the canary window's
        if newest is not None and latest is not None:
            key = (gate.release_id, gate.metric)
            if key not in newest or newest[key] < latest:
                newest[key] = latest

    if len(pulled) > 1:
        with ThreadPoolExecutor(max_workers=PROMETHEUS_PARALLEL) as pool:
            answers = list(pool.map(lambda g: prometheus_result(g, now=now), pulled))
    else:
        answers = [prometheus_result(gate, now=now) for gate in pulled]
    results.update((gate.pk, result) for gate, result in zip(pulled, answers, strict=True))
    return results


# --- Pushed samples ----------------------------------------------------------------------


def is_strict(gate: Gate) -> bool:
    """Production: samples toward a success must come from someone other than the release's
    requester and plan editors."""
    return gate.release.environment.is_production


def untrusted_submitters(gate: Gate) -> tuple[int, ...]:
    release = gate.release
    if not is_strict(gate):
        return ()
    editors = [user.pk for user in release.plan_editors.all()] if release.pk else []
    return tuple(sorted({release.requested_by_id, *editors}))


def push_requests(
    gate: Gate, *, now: datetime, untrusted: tuple[int, ...] | None = None
) -> list[WindowRequest]:
    """The windows a push gate reads at `now`: the canary cohort, and the control cohort
    when the gate has a baseline (aggregates.window_stats answers them all in one query).
    `untrusted` defaults to untrusted_submitters(gate)."""
    start = now - timedelta(seconds=gate.window_seconds)
    cohorts = [Cohort.CANARY.value]
    wants_values = False
    if gate.baseline:
        cohorts.append(str(gate.baseline.get("cohort") or Cohort.CONTROL.value))
        wants_values = gate.baseline.get("method") == "mann_whitney"
    if untrusted is None:
        untrusted = untrusted_submitters(gate)
    return [
        WindowRequest(
            release_id=gate.release_id,
            metric=gate.metric,
            cohort=cohort,
            start=start,
            end=now,
            quantile=QUANTILES.get(gate.aggregate),
            untrusted=untrusted,
            want_values=wants_values,
        )
        for cohort in cohorts
    ]


def _fmt(value: float | None) -> str:
    return "none" if value is None else f"{value:.4g}"


class _Result:
    """Builds one gate's GateResult (the fields every outcome shares)."""

    def __init__(self, gate: Gate, start: datetime, end: datetime, source: str = "push"):
        self.gate, self.start, self.end, self.source = gate, start, end, source

    def __call__(self, outcome: str, detail: str, **fields) -> GateResult:
        base = {
            "value": None,
            "samples": 0,
            "control_value": None,
            "control_samples": None,
            "p_value": None,
            "threshold": self.gate.threshold,
        }
        return GateResult(
            gate_id=self.gate.id,
            outcome=outcome,
            window_start=self.start,
            window_end=self.end,
            source=self.source,
            detail=detail,
            **{**base, **fields},
        )


def _no_data(gate: Gate, make: _Result, what: str, **fields) -> GateResult:
    if gate.no_data == NoData.PASS and not is_strict(gate):
        return make(
            Outcome.SUCCESS,
            f"{what}; the no-data policy `pass` counts this as a success",
            **fields,
        )
    if gate.no_data == NoData.PASS:
        tail = "`pass` never counts as a success in production"
    elif gate.no_data == NoData.FAIL:
        tail = "the no-data policy `fail` counts this as a failure"
    else:
        tail = "the no-data policy `pause` pauses the release"
    return make(Outcome.NO_DATA, f"{what}; {tail}", **fields)


TRUSTED = "from accounts other than the requester and plan editors"


def push_result(gate: Gate, stats: Sequence[WindowStats], *, now: datetime) -> GateResult:
    """One push gate's outcome from its windows' statistics (push_requests' order)."""
    make = _Result(gate, now - timedelta(seconds=gate.window_seconds), now)
    if gate.baseline:
        return _baseline_result(gate, stats[0], stats[1], make)
    canary, strict = stats[0], is_strict(gate)
    least = max(1, gate.min_samples)
    what = f"{gate.aggregate}({gate.metric})"
    if not canary.all.count:
        return _no_data(gate, make, f"no samples of {gate.metric} in the window")

    def judged(sample_stats, qualifier=""):
        value = sample_stats.value(gate.aggregate, gate.window_seconds)
        failed = breaches(value, gate.comparator, gate.threshold)
        outcome = Outcome.FAILURE if failed else Outcome.SUCCESS
        relation = gate.comparator if failed else f"not {gate.comparator}"
        detail = (
            f"{what} {_fmt(value)} {relation} {gate.threshold:g} "
            f"over {sample_stats.count} samples{qualifier}"
        )
        return make(outcome, detail, value=value, samples=sample_stats.count)

    every, trusted = canary.all, canary.trusted
    if every.count >= least:
        result = judged(every)
        if result.outcome == Outcome.FAILURE or not strict:
            return result
    if strict and trusted.count >= least:
        return judged(trusted, f" {TRUSTED}")
    value = every.value(gate.aggregate, gate.window_seconds)
    if every.count < least:
        detail = f"only {every.count} samples of {gate.metric}, fewer than min_samples {least}"
    else:
        detail = (
            f"{what} {_fmt(value)} is within {gate.threshold:g} over {every.count} samples, "
            f"but only {trusted.count} come {TRUSTED} (at least {least} needed for a "
            f"success in production)"
        )
    return make(Outcome.INCONCLUSIVE, detail, value=value, samples=every.count)


def _baseline_result(
    gate: Gate, canary: WindowStats, control: WindowStats, make: _Result
) -> GateResult:
    try:
        baseline = baseline_of(gate)
    except BaselineError as exc:
        return make(Outcome.ERROR, str(exc))
    least = max(1, gate.min_samples)
    if not canary.all.count:
        return _no_data(
            gate,
            make,
            f"no canary samples of {gate.metric} in the window",
            control_samples=control.all.count,
        )

    def judged(canary_stats, control_stats, qualifier=""):
        comparison = compare(
            gate, baseline, canary_stats, control_stats, window_seconds=gate.window_seconds
        )
        if comparison.inconclusive:
            outcome = Outcome.INCONCLUSIVE
        else:
            outcome = Outcome.FAILURE if comparison.fails else Outcome.SUCCESS
        return make(
            outcome,
            comparison.statement + qualifier,
            value=comparison.value,
            samples=canary_stats.count,
            control_value=comparison.control_value,
            control_samples=control_stats.count,
            p_value=comparison.p_value,
            threshold=comparison.threshold,
        )

    strict = is_strict(gate)
    try:
        if canary.all.count >= least and control.all.count >= least:
            result = judged(canary.all, control.all, f" over {canary.all.count} samples")
            if result.outcome == Outcome.FAILURE or not strict:
                return result
        if strict and canary.trusted.count >= least and control.trusted.count >= least:
            return judged(canary.trusted, control.trusted, f", samples {TRUSTED}")
    except BaselineError as exc:
        return make(Outcome.ERROR, str(exc), samples=canary.all.count)
    counts = (canary.trusted, control.trusted) if strict else (canary.all, control.all)
    qualifier = f" {TRUSTED}" if strict else ""
    detail = (
        f"{counts[0].count} canary and {counts[1].count} {baseline.cohort} samples of "
        f"{gate.metric}{qualifier}: at least {least} needed in each cohort"
    )
    return make(
        Outcome.INCONCLUSIVE,
        detail,
        samples=canary.all.count,
        control_samples=control.all.count,
    )


# --- Prometheus ------------------------------------------------------------------------


def prometheus_result(
    gate: Gate, *, now: datetime, answer: prometheus.PrometheusAnswer | None = None
) -> GateResult:
    """The gate's result from its PromQL at `now`: asked of Prometheus, or as `answer` gives
    it (a replay reads a whole period in one range query)."""
    source = f"prometheus: {gate.promql}"[:500]
    make = _Result(gate, now - timedelta(seconds=gate.window_seconds), now, source)
    if gate.baseline:
        return make(
            Outcome.ERROR,
            "a baseline compares pushed samples; write the comparison into the PromQL instead",
        )
    if answer is None:
        answer = prometheus.query_value(gate.promql, at=now)
    if answer.error:
        return make(Outcome.ERROR, answer.error)
    failed = breaches(answer.value, gate.comparator, gate.threshold)
    relation = gate.comparator if failed else f"not {gate.comparator}"
    return make(
        Outcome.FAILURE if failed else Outcome.SUCCESS,
        f"{gate.promql} = {_fmt(answer.value)} {relation} {gate.threshold:g}",
        value=answer.value,
        samples=1,
    )


# --- The running counters ------------------------------------------------------------------


@dataclass(frozen=True)
class GateCounters:
    consecutive_failures: int
    consecutive_errors: int


@dataclass(frozen=True)
class GateStep:
    counters: GateCounters
    act: bool  # the on_failure action fires now (never for advisory gates)
    errors_exhausted: bool  # GATE_ERROR_LIMIT consecutive errors: the release pauses
    no_data_action: str | None  # "fail" counted as failure; "pause" -> pause the release; None


def gate_step(gate: Gate, counters: GateCounters, outcome: str, *, error_limit: int) -> GateStep:
    """The Nth-consecutive-failure rule, the error limit, the no-data policy; pure.
    Only success resets the failure count; inconclusive/no_data/error neither count nor reset
    it (no_data with policy 'fail' counts as a failure).

    `act` is true on every counted failure from the Nth consecutive one on (a gate that keeps
    failing keeps asking); advisory gates never act, pause for errors or pause for no data.
    Any outcome but `error` ends a run of errors."""
    failures, errors = counters.consecutive_failures, counters.consecutive_errors
    counted_failure = False
    no_data_action = None
    if outcome == Outcome.ERROR:
        errors += 1
    else:
        errors = 0
    if outcome == Outcome.SUCCESS:
        failures = 0
    elif outcome == Outcome.FAILURE:
        counted_failure = True
    elif outcome == Outcome.NO_DATA:
        if gate.no_data == NoData.FAIL:
            counted_failure = True
            no_data_action = "fail"
        elif gate.no_data == NoData.PAUSE:
            no_data_action = "pause" if gate.acts else None
        elif not is_strict(gate):  # `pass`: a success, except in production
            failures = 0
    if counted_failure:
        failures += 1
    return GateStep(
        counters=GateCounters(consecutive_failures=failures, consecutive_errors=errors),
        act=gate.acts and counted_failure and failures >= gate.failures_to_act,
        errors_exhausted=gate.acts and outcome == Outcome.ERROR and errors >= error_limit,
        no_data_action=no_data_action,
    )
