"""Rollout plans: the built-in templates, custom stages and gate specifications, validated.

Pure functions, no writes: the release services turn what they return into Stage and Gate
rows. Every refusal is a ValidationError naming the field (`plan.stages[2].percentage`,
`gates[0].threshold`), so the API answers 400 saying exactly what to fix.

A stage sets each of the release's flags to (mode, percentage): percentage 0 is `off` and
100 is `full`, whatever mode was written.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from django.core.exceptions import ValidationError

from flags.models import Mode

from . import presets
from .models import Aggregate, Cohort, Comparator, NoData, OnFailure

DAY = 24 * 3600
MAX_STAGES = 50
MAX_GATES = 50
MAX_HOLD_SECONDS = 30 * DAY
MAX_WINDOW_SECONDS = 7 * DAY
MAX_FAILURES_TO_ACT = 100
MAX_MIN_SAMPLES = 1_000_000
MAX_PROMQL = 2000
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.:-]{0,49}$")
METRIC_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,99}$")
NAME_HELP = "1-50 letters, digits, spaces or _ . : -, starting with a letter or digit"
METRIC_HELP = "1-100 letters, digits or _ . : -, starting with a letter or _"
BASELINE_METHODS = ("ratio", "mann_whitney", "binomial", "poisson")


@dataclass(frozen=True)
class StageSpec:
    name: str
    mode: str
    percentage: int
    hold_seconds: int = 0
    needs_go: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _stage(name: str, percentage: int, hold: int = 0, *, mode: str = "", go: bool = False):
    return StageSpec(name, mode or Mode.PERCENTAGE, percentage, hold, go)


TEMPLATES: dict[str, tuple[StageSpec, ...]] = {
    "five-stage": (
        StageSpec("infrastructure", Mode.OFF, 0),
        _stage("canary", 5, 600),
        _stage("partial", 25, 1800),
        _stage("majority", 75, 3600),
        StageSpec("full", Mode.FULL, 100),
    ),
    "progressive": (
        StageSpec("shadow", Mode.SHADOW, 0, DAY),
        _stage("1%", 1, DAY),
        _stage("2%", 2, DAY),
        _stage("5%", 5, DAY),
        _stage("10%", 10, DAY, go=True),
        _stage("25%", 25, DAY),
        _stage("50%", 50, DAY),
        _stage("75%", 75, DAY),
        StageSpec("full", Mode.FULL, 100),
    ),
    "allowlist-percentage-full": (
        StageSpec("allowlist", Mode.ALLOWLIST, 0, 3600),
        _stage("percentage", 10, 3600),
        StageSpec("full", Mode.FULL, 100),
    ),
}


def _normalised(mode: str, percentage: int) -> tuple[str, int]:
    """Percentage 0 is off and 100 is full; off and full carry their own percentage."""
    if mode == Mode.PERCENTAGE and percentage == 0:
        return Mode.OFF, 0
    if (mode == Mode.PERCENTAGE and percentage == 100) or mode == Mode.FULL:
        return Mode.FULL, 100
    if mode in (Mode.OFF, Mode.SHADOW, Mode.ALLOWLIST):
        return mode, 0
    return mode, percentage


def _whole(value: Any, low: int, high: int) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and low <= value <= high


def _name_error(value: Any) -> str | None:
    if not isinstance(value, str) or not NAME_PATTERN.match(value):
        return NAME_HELP
    return None


def stage_clean(raw: Any, where: str, errors: dict[str, str]) -> StageSpec | None:
    if not isinstance(raw, Mapping):
        errors[where] = "a stage is an object: name, mode, percentage, hold_seconds, needs_go"
        return None
    known = {"name", "mode", "percentage", "hold_seconds", "needs_go"}
    for field in sorted(set(raw) - known):
        errors[f"{where}.{field}"] = f"unknown field (send only {', '.join(sorted(known))})"
    name = raw.get("name")
    if (why := _name_error(name)) is not None:
        errors[f"{where}.name"] = why
    percentage = raw.get("percentage", 0)
    if not _whole(percentage, 0, 100):
        errors[f"{where}.percentage"] = "a whole number from 0 to 100"
        percentage = 0
    mode = raw.get("mode", Mode.PERCENTAGE)
    if mode not in Mode.values:
        errors[f"{where}.mode"] = f"one of {', '.join(Mode.values)}"
    hold = raw.get("hold_seconds", 0)
    if not _whole(hold, 0, MAX_HOLD_SECONDS):
        errors[f"{where}.hold_seconds"] = f"a whole number of seconds from 0 to {MAX_HOLD_SECONDS}"
    needs_go = raw.get("needs_go", False)
    if not isinstance(needs_go, bool):
        errors[f"{where}.needs_go"] = "true or false"
    if any(key.startswith(where + ".") for key in errors):
        return None
    mode, percentage = _normalised(mode, percentage)
    return StageSpec(name, mode, percentage, hold, needs_go)


def plan_clean(plan: Any) -> tuple[str, list[StageSpec]]:
    """(template name or "", stages) from a template name or {"stages": [...]} / [...]."""
    if isinstance(plan, str):
        if plan not in TEMPLATES:
            raise ValidationError(
                {"plan": f"no template {plan[:60]!r}: one of {', '.join(TEMPLATES)}"}
            )
        return plan, list(TEMPLATES[plan])
    stages = plan.get("stages") if isinstance(plan, Mapping) else plan
    if isinstance(plan, Mapping) and set(plan) - {"stages"}:
        raise ValidationError({"plan": 'a custom plan is {"stages": [...]}'})
    if not isinstance(stages, Sequence) or isinstance(stages, str) or not stages:
        raise ValidationError({"plan": 'a template name or {"stages": [at least one stage]}'})
    if len(stages) > MAX_STAGES:
        raise ValidationError({"plan.stages": f"at most {MAX_STAGES} stages"})
    errors: dict[str, str] = {}
    clean = [stage_clean(raw, f"plan.stages[{i}]", errors) for i, raw in enumerate(stages)]
    names = [s.name for s in clean if s is not None]
    for i, stage in enumerate(clean):
        if stage is not None and names.count(stage.name) > 1:
            errors[f"plan.stages[{i}].name"] = f"{stage.name!r} names two stages"
    if errors:
        raise ValidationError(errors)
    return "", [s for s in clean if s is not None]


# --- Gates ------------------------------------------------------------------------------------

# The fields of a gate specification, in the API's shape (the presets are written in it).
GATE_FIELDS = presets.SPEC_FIELDS


def _preset_expand(raw: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    """{"preset": name, ...overrides}: the preset's fields under the overrides given."""
    name = raw.get("preset")
    if not isinstance(name, str) or name not in presets.PRESETS_BY_NAME:
        known = ", ".join(sorted(presets.PRESETS_BY_NAME))
        raise ValidationError({f"{where}.preset": f"no preset {str(name)[:60]!r}: one of {known}"})
    return {**presets.gate_preset(name), **{k: v for k, v in raw.items() if k != "preset"}}


def _choice(raw: Mapping, field: str, choices: type, default: str, where: str, errors: dict):
    value = raw.get(field, default)
    if value not in choices.values:
        errors[f"{where}.{field}"] = f"one of {', '.join(choices.values)}"
    return value


def _number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def baseline_clean(raw: Any, where: str, errors: dict[str, str]) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        errors[where] = '{"cohort": "control", "method": "ratio|mann_whitney|binomial|poisson"}'
        return None
    known = {"cohort", "method", "ratio", "confidence"}
    for field in sorted(set(raw) - known):
        errors[f"{where}.{field}"] = f"unknown field (send only {', '.join(sorted(known))})"
    cohort = raw.get("cohort", Cohort.CONTROL)
    if cohort != Cohort.CONTROL:
        errors[f"{where}.cohort"] = "the baseline cohort is control"
    method = raw.get("method")
    if method not in BASELINE_METHODS:
        errors[f"{where}.method"] = f"one of {', '.join(BASELINE_METHODS)}"
    clean: dict[str, Any] = {"cohort": cohort, "method": method}
    if method == "ratio":
        ratio = raw.get("ratio", 1.5)
        if not _number(ratio) or not 0 < ratio <= 1000:
            errors[f"{where}.ratio"] = "a finite number above 0, at most 1000"
        clean["ratio"] = ratio
    else:
        confidence = raw.get("confidence", 0.95)
        if not _number(confidence) or not 0.5 <= confidence < 1:
            errors[f"{where}.confidence"] = "a number from 0.5 up to (not including) 1"
        clean["confidence"] = confidence
    return clean


def _source_clean(raw: Any, where: str, errors: dict[str, str]) -> str:
    """The PromQL expression, or "" for pushed samples."""
    if raw is None or raw == "push":
        return ""
    if isinstance(raw, Mapping) and set(raw) == {"prometheus"}:
        expression = raw["prometheus"]
        if (
            isinstance(expression, str)
            and expression.strip()
            and len(expression) <= MAX_PROMQL
            and "\x00" not in expression
        ):
            return expression.strip()
        errors[f"{where}.source.prometheus"] = f"a PromQL expression of 1-{MAX_PROMQL} characters"
        return ""
    errors[f"{where}.source"] = '"push" or {"prometheus": "<PromQL>"}'
    return ""


def gate_spec_clean(raw: Any, where: str = "gate") -> dict[str, Any]:
    """One gate specification, every field checked; the clean dict the Gate row takes, with
    `stage` as given (a stage name, an index or None) for the caller to resolve."""
    if not isinstance(raw, Mapping):
        raise ValidationError({where: "a gate is an object (see the gate fields)"})
    if "preset" in raw:
        raw = _preset_expand(raw, where)
    errors: dict[str, str] = {}
    for field in sorted(set(raw) - set(GATE_FIELDS)):
        errors[f"{where}.{field}"] = f"unknown field (send only {', '.join(GATE_FIELDS)})"
    name = raw.get("name")
    if (why := _name_error(name)) is not None:
        errors[f"{where}.name"] = why
    metric = raw.get("metric")
    if not isinstance(metric, str) or not METRIC_PATTERN.match(metric):
        errors[f"{where}.metric"] = METRIC_HELP
    spec: dict[str, Any] = {"name": name, "metric": metric}
    spec["aggregate"] = _choice(raw, "aggregate", Aggregate, Aggregate.AVG, where, errors)
    spec["comparator"] = _choice(raw, "comparator", Comparator, Comparator.GT, where, errors)
    spec["no_data"] = _choice(raw, "no_data", NoData, NoData.PAUSE, where, errors)
    spec["on_failure"] = _choice(raw, "on_failure", OnFailure, OnFailure.ROLLBACK, where, errors)
    threshold = raw.get("threshold")
    if not _number(threshold) or abs(threshold) > 1e15:
        errors[f"{where}.threshold"] = "a finite number (not NaN or infinite), |x| <= 1e15"
    spec["threshold"] = float(threshold) if _number(threshold) else 0.0
    for field, default, low, high in (
        ("window_seconds", 300, 1, MAX_WINDOW_SECONDS),
        ("min_samples", 1, 1, MAX_MIN_SAMPLES),
        ("failures_to_act", 1, 1, MAX_FAILURES_TO_ACT),
    ):
        value = raw.get(field, default)
        if not _whole(value, low, high):
            errors[f"{where}.{field}"] = f"a whole number from {low} to {high}"
        spec[field] = value
    advisory = raw.get("advisory", False)
    if not isinstance(advisory, bool):
        errors[f"{where}.advisory"] = "true or false"
    spec["advisory"] = advisory
    stage = raw.get("stage")
    if stage is not None and not isinstance(stage, str) and not _whole(stage, 0, MAX_STAGES):
        errors[f"{where}.stage"] = "a stage name, a stage index, or null for the whole release"
    spec["stage"] = stage
    spec["promql"] = _source_clean(raw.get("source", "push"), where, errors)
    spec["baseline"] = baseline_clean(raw.get("baseline"), f"{where}.baseline", errors)
    if errors:
        raise ValidationError(errors)
    return spec


def gates_clean(raw: Any, stages: Sequence[StageSpec]) -> list[dict[str, Any]]:
    """Every gate of a release; `stage` resolved to an index into `stages` (or None)."""
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        raise ValidationError({"gates": "a list of gates"})
    if len(raw) > MAX_GATES:
        raise ValidationError({"gates": f"at most {MAX_GATES} gates"})
    errors: dict[str, list[str]] = {}
    clean: list[dict[str, Any]] = []
    names = [s.name for s in stages]
    for i, item in enumerate(raw):
        where = f"gates[{i}]"
        try:
            spec = gate_spec_clean(item, where)
        except ValidationError as error:
            for field, messages in error.message_dict.items():
                errors.setdefault(field, []).extend(messages)
            continue
        stage = spec["stage"]
        if isinstance(stage, str):
            if stage not in names:
                errors[f"{where}.stage"] = [f"no stage {stage[:60]!r} in the plan"]
                continue
            spec["stage"] = names.index(stage)
        elif stage is not None and stage >= len(stages):
            errors[f"{where}.stage"] = [f"the plan has stages 0 to {len(stages) - 1}"]
            continue
        if any(g["name"] == spec["name"] for g in clean):
            errors[f"{where}.name"] = [f"{spec['name']!r} names two gates"]
            continue
        clean.append(spec)
    if errors:
        raise ValidationError(errors)
    return clean


def acting_gates_check(gates: Sequence[Mapping[str, Any]], *, production: bool) -> None:
    """A production plan needs at least one gate that acts (advisory false)."""
    if production and not any(not g["advisory"] for g in gates):
        raise ValidationError(
            {"gates": "a production plan needs at least one gate that acts (advisory false)"}
        )
