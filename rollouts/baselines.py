"""Baseline gates: the release's cohort (canary) compared with a control cohort of the same
metric over the same window.

`gate.baseline = {"cohort": "control", "method": "ratio|mann_whitney|binomial|poisson",
"ratio": 1.5, "confidence": 0.95}`. The gate's comparator gives the bad direction: `>` or
`>=` means "canary higher is worse", `<` or `<=` "canary lower is worse".

- ratio: fails when `canary aggregate <comparator> ratio x control aggregate`.
- mann_whitney: Mann-Whitney U on the two cohorts' values, one-sided in the bad direction;
  fails when p < 1 - confidence (for latencies and other skewed measurements).
- binomial: each sample's `value` is a count of events and `total` the trials behind it;
  Fisher's exact test on the 2x2 table (events, non-events) x (canary, control), one-sided;
  fails when p < 1 - confidence (error counts out of requests).
- poisson: `value` events over `total` exposure (requests, seconds); the conditional
  binomial test of two Poisson rates (given k events in all, the canary's share is
  Binomial(k, t_canary / (t_canary + t_control)) when the rates are equal), one-sided.

Too few samples in either cohort (fewer than `min_samples`) is decided by rollouts/gates.py
before anything here runs: inconclusive, never a pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

from rollouts.aggregates import SampleStats
from rollouts.models import Comparator, Gate

METHODS = ("ratio", "mann_whitney", "binomial", "poisson")
DEFAULTS = {"cohort": "control", "method": "ratio", "ratio": 1.5, "confidence": 0.95}


class BaselineError(Exception):
    """The baseline cannot be computed from what was recorded (a sentence for people)."""


@dataclass(frozen=True, kw_only=True)
class Baseline:
    cohort: str
    method: str
    ratio: float
    confidence: float


@dataclass(frozen=True, kw_only=True)
class Comparison:
    fails: bool
    value: float | None  # the canary's aggregate (or rate, for binomial and Poisson)
    control_value: float | None
    p_value: float | None
    threshold: float  # what the canary was held against, in the metric's unit
    statement: str  # "p95(latency) 310 > 1.5 x control 180"
    inconclusive: bool = False  # nothing to compare (no trials, no exposure)


def baseline_of(gate: Gate) -> Baseline:
    spec = {**DEFAULTS, **(gate.baseline or {})}
    if spec["method"] not in METHODS:
        raise BaselineError(
            f"baseline method {spec['method']!r} is not one of {', '.join(METHODS)}"
        )
    try:
        ratio, confidence = float(spec["ratio"]), float(spec["confidence"])
    except (TypeError, ValueError) as exc:
        raise BaselineError("baseline ratio and confidence must be numbers") from exc
    if not 0 < confidence < 1:
        raise BaselineError(f"baseline confidence {confidence:g} is not between 0 and 1")
    if not math.isfinite(ratio) or ratio <= 0:
        raise BaselineError(f"baseline ratio {ratio:g} is not a positive number")
    return Baseline(
        cohort=str(spec["cohort"]), method=spec["method"], ratio=ratio, confidence=confidence
    )


def higher_is_worse(comparator: str) -> bool:
    return comparator in (Comparator.GT, Comparator.GE)


def breaches(value: float, comparator: str, threshold: float) -> bool:
    """The gate's failure condition."""
    return {
        Comparator.GT: value > threshold,
        Comparator.GE: value >= threshold,
        Comparator.LT: value < threshold,
        Comparator.LE: value <= threshold,
    }[comparator]


def compare(
    gate: Gate,
    baseline: Baseline,
    canary: SampleStats,
    control: SampleStats,
    *,
    window_seconds: float,
) -> Comparison:
    """One comparison of the two cohorts (each with at least min_samples samples)."""
    if baseline.method == "ratio":
        return _ratio(gate, baseline, canary, control, window_seconds)
    if baseline.method == "mann_whitney":
        return _mann_whitney(gate, baseline, canary, control, window_seconds)
    return _counts(gate, baseline, canary, control)


def _fmt(value: float | None) -> str:
    return "none" if value is None else f"{value:.4g}"


def _ratio(gate, baseline, canary, control, window_seconds) -> Comparison:
    value = canary.value(gate.aggregate, window_seconds)
    control_value = control.value(gate.aggregate, window_seconds)
    threshold = baseline.ratio * control_value
    fails = breaches(value, gate.comparator, threshold)
    return Comparison(
        fails=fails,
        value=value,
        control_value=control_value,
        p_value=None,
        threshold=threshold,
        statement=(
            f"{gate.aggregate}({gate.metric}) {_fmt(value)} "
            f"{gate.comparator if fails else 'not ' + gate.comparator} "
            f"{baseline.ratio:g} x {baseline.cohort} {_fmt(control_value)}"
        ),
    )


def _alternative(gate: Gate) -> str:
    return "greater" if higher_is_worse(gate.comparator) else "less"


def _verdict(gate, baseline, p_value, value, control_value, what) -> Comparison:
    # Rounded so that float noise (1 - 0.95 = 0.050000000000000044) never decides.
    alpha = round(1 - baseline.confidence, 9)
    fails = round(p_value, 9) < alpha
    worse = "higher" if higher_is_worse(gate.comparator) else "lower"
    return Comparison(
        fails=fails,
        value=value,
        control_value=control_value,
        p_value=p_value,
        threshold=control_value,
        statement=(
            f"{what}: canary {_fmt(value)} vs {baseline.cohort} {_fmt(control_value)}, "
            f"p = {p_value:.3g} {'<' if fails else '>='} {alpha:.3g} "
            f"({'significantly' if fails else 'not significantly'} {worse} at "
            f"{baseline.confidence:.0%} confidence)"
        ),
    )


def _mann_whitney(gate, baseline, canary, control, window_seconds) -> Comparison:
    result = stats.mannwhitneyu(
        canary.values, control.values, alternative=_alternative(gate), method="auto"
    )
    return _verdict(
        gate,
        baseline,
        float(result.pvalue),
        canary.value(gate.aggregate, window_seconds),
        control.value(gate.aggregate, window_seconds),
        f"Mann-Whitney U on {gate.metric} ({_fmt(float(result.statistic))})",
    )


def _whole(number: float | None, what: str, gate: Gate) -> int:
    if number is None or abs(number - round(number)) > 1e-6 or number < 0:
        raise BaselineError(
            f"a {gate.baseline.get('method')} baseline reads each sample's value as a count of "
            f"events and total as the trials: {what} {_fmt(number)} is not a whole number"
        )
    return round(number)


def _counts(gate, baseline, canary, control) -> Comparison:
    for name, cohort in (("canary", canary), (baseline.cohort, control)):
        if cohort.total_count < cohort.count:
            raise BaselineError(
                f"a {baseline.method} baseline needs `total` on every sample: "
                f"{cohort.count - cohort.total_count} of {cohort.count} {name} samples "
                f"of {gate.metric} have none"
            )
    events, control_events = canary.sum or 0.0, control.sum or 0.0
    exposure, control_exposure = canary.total_sum or 0.0, control.total_sum or 0.0
    if exposure <= 0 or control_exposure <= 0:
        return Comparison(
            fails=False,
            value=None,
            control_value=None,
            p_value=None,
            threshold=gate.threshold,
            inconclusive=True,
            statement=(
                f"{gate.metric}: no trials to compare (canary {_fmt(exposure)}, "
                f"{baseline.cohort} {_fmt(control_exposure)})"
            ),
        )
    value, control_value = events / exposure, control_events / control_exposure
    alternative = _alternative(gate)
    if baseline.method == "binomial":
        e1, n1 = _whole(events, "events", gate), _whole(exposure, "trials", gate)
        e0, n0 = _whole(control_events, "events", gate), _whole(control_exposure, "trials", gate)
        if e1 > n1 or e0 > n0:
            raise BaselineError(
                f"{gate.metric}: more events than trials (canary {e1} of {n1}, "
                f"{baseline.cohort} {e0} of {n0})"
            )
        p_value = stats.fisher_exact([[e1, n1 - e1], [e0, n0 - e0]], alternative=alternative)[1]
        what = f"exact binomial (Fisher) on {gate.metric}: {e1}/{n1} vs {e0}/{n0}"
    else:
        e1, e0 = _whole(events, "events", gate), _whole(control_events, "events", gate)
        if e1 + e0 == 0:
            p_value = 1.0
        else:
            share = exposure / (exposure + control_exposure)
            p_value = stats.binomtest(e1, e1 + e0, share, alternative=alternative).pvalue
        what = (
            f"exact Poisson rate test on {gate.metric}: {e1} in {_fmt(exposure)} "
            f"vs {e0} in {_fmt(control_exposure)}"
        )
    return _verdict(gate, baseline, float(p_value), value, control_value, what)
