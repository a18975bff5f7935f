"""What the release pages show, built from the page selectors' rows: list rows with gate
health at a glance, the header, the stage timeline and the evaluations table. No queries
beyond the prefetched relations."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.utils import timezone

from flags.models import Mode

from .models import (
    Gate,
    GateEvaluation,
    Outcome,
    Release,
    ReleaseEvent,
    ReleaseEventKind,
    ReleaseStatus,
    Stage,
)

OUTCOME_LABELS = {
    Outcome.SUCCESS: "passing",
    Outcome.FAILURE: "failing",
    Outcome.INCONCLUSIVE: "inconclusive",
    Outcome.NO_DATA: "no data",
    Outcome.ERROR: "error",
}
# Events that put the release on a stage.
ENTERS_STAGE = {ReleaseEventKind.STARTED, ReleaseEventKind.ADVANCED}
# Events that end the release.
ENDS = {ReleaseEventKind.ROLLED_BACK, ReleaseEventKind.COMPLETED}


def duration_text(seconds: float | int | None) -> str:
    """'90 s', '5 min', '2 h 30 min', '1 d 2 h'."""
    if seconds is None:
        return ""
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 120:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def exposure_of(mode: str, percentage: int | None) -> int:
    """The share of traffic that gets the on-value, allowlists aside."""
    if mode == Mode.FULL:
        return 100
    if mode == Mode.PERCENTAGE:
        return percentage or 0
    return 0


def stage_summary(stage: Stage) -> str:
    """'percentage 5%', 'full', 'allowlist'."""
    if stage.mode == Mode.PERCENTAGE:
        return f"percentage {stage.percentage}%"
    return stage.mode


def current_stage(release: Release) -> Stage | None:
    if release.current_stage_index is None:
        return None
    return next((s for s in release.stages.all() if s.index == release.current_stage_index), None)


def stage_text(release: Release) -> str:
    """'2 of 5: canary (percentage 5%)', or '' before the start and after the end."""
    stage = current_stage(release)
    if stage is None:
        return ""
    total = len(release.stages.all())
    return f"{stage.index + 1} of {total}: {stage.name} ({stage_summary(stage)})"


def value_text(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.4g}"


def gate_condition(gate: Gate) -> str:
    """'avg(error_rate) > 5 over 5 min', or the ratio to control for a ratio baseline."""
    window = duration_text(gate.window_seconds)
    subject = f"{gate.aggregate}({gate.metric})"
    baseline = gate.baseline or {}
    if baseline.get("method") == "ratio":
        return f"{subject} {gate.comparator} {baseline.get('ratio', 1):g}x control over {window}"
    if baseline.get("method"):
        confidence = baseline.get("confidence", 0.95)
        return f"{subject} worse than control ({baseline['method']}, {confidence:g}) over {window}"
    return f"{subject} {gate.comparator} {gate.threshold:g} over {window}"


@dataclass(frozen=True)
class GateHealth:
    """A gate's latest evaluation, as a coloured dot and a sentence."""

    gate: Gate
    evaluation: GateEvaluation | None

    @property
    def outcome(self) -> str:
        return self.evaluation.outcome if self.evaluation else "none"

    @property
    def label(self) -> str:
        if self.evaluation is None:
            return "not evaluated yet"
        return OUTCOME_LABELS.get(self.evaluation.outcome, self.evaluation.outcome)

    @property
    def title(self) -> str:
        gate, evaluation = self.gate, self.evaluation
        head = f"{gate.name}{' (advisory)' if gate.advisory else ''}: {gate_condition(gate)}"
        if evaluation is None:
            return f"{head}. Not evaluated yet."
        when = timezone.localtime(evaluation.evaluated_at).strftime("%H:%M:%S")
        return (
            f"{head}. {self.label} at {when}: value {value_text(evaluation.value)} "
            f"over {evaluation.samples} samples."
        )


def gate_health(release: Release, latest: dict[int, GateEvaluation]) -> list[GateHealth]:
    return [GateHealth(gate, latest.get(gate.pk)) for gate in release.gates.all()]


@dataclass(frozen=True)
class ReleaseRow:
    release: Release
    stage: str
    gates: list[GateHealth]

    @property
    def is_production(self) -> bool:
        return self.release.environment.is_production

    @property
    def flags(self) -> list[str]:
        return [rf.flag.key for rf in self.release.release_flags.all()]


def release_rows(
    releases: Iterable[Release], latest: dict[int, GateEvaluation]
) -> list[ReleaseRow]:
    return [ReleaseRow(r, stage_text(r), gate_health(r, latest)) for r in releases]


# --- The stage timeline ---------------------------------------------------------------------


@dataclass(frozen=True)
class StageRow:
    stage: Stage
    state: str  # "done", "current", "planned", "stopped"
    entered_at: dt.datetime | None
    left_at: dt.datetime | None
    hold_ends_at: dt.datetime | None

    @property
    def summary(self) -> str:
        return stage_summary(self.stage)

    @property
    def hold(self) -> str:
        return duration_text(self.stage.hold_seconds) if self.stage.hold_seconds else "none"

    @property
    def spent(self) -> str:
        if self.entered_at is None:
            return ""
        return duration_text(((self.left_at or timezone.now()) - self.entered_at).total_seconds())

    @property
    def hold_note(self) -> str:
        """For the current stage: how long its hold still runs."""
        if self.state != "current" or self.hold_ends_at is None:
            return ""
        left = (self.hold_ends_at - timezone.now()).total_seconds()
        if left <= 0:
            return "hold passed"
        return f"hold ends in {duration_text(left)}"


def stage_timeline(release: Release, events: Sequence[ReleaseEvent]) -> list[StageRow]:
    """Each stage: planned (mode, percentage, hold, needs go), when it was entered and left."""
    entered: dict[int, dt.datetime] = {}
    left: dict[int, dt.datetime] = {}
    on: int | None = None
    for event in events:
        if event.kind in ENTERS_STAGE and event.stage_index is not None:
            if on is not None and on != event.stage_index:
                left[on] = event.at
            if event.stage_index not in entered or event.kind == ReleaseEventKind.STARTED:
                entered[event.stage_index] = event.at
                left.pop(event.stage_index, None)
            on = event.stage_index
        elif event.kind in ENDS and on is not None:
            left.setdefault(on, event.at)
            on = None
    rows = []
    for stage in release.stages.all():
        if release.is_live and stage.index == release.current_stage_index:
            state = "current"
        elif stage.index in left:
            state = (
                "stopped"
                if release.status == ReleaseStatus.ROLLED_BACK and (stage.index == max(left))
                else "done"
            )
        else:
            state = "planned"
        hold_ends = None
        if state == "current" and release.hold_started_at is not None:
            hold_ends = release.hold_started_at + dt.timedelta(seconds=stage.hold_seconds)
        rows.append(
            StageRow(stage, state, entered.get(stage.index), left.get(stage.index), hold_ends)
        )
    return rows


# --- The evaluations table ------------------------------------------------------------------


@dataclass(frozen=True)
class EvaluationRow:
    evaluation: GateEvaluation

    @property
    def gate(self) -> Gate:
        return self.evaluation.gate

    @property
    def value(self) -> str:
        evaluation = self.evaluation
        text = value_text(evaluation.value)
        if evaluation.control_value is not None:
            text += f" vs control {value_text(evaluation.control_value)}"
        if evaluation.p_value is not None:
            text += f" (p {evaluation.p_value:.3g})"
        return text

    @property
    def samples(self) -> str:
        evaluation = self.evaluation
        if evaluation.control_samples is not None:
            return f"{evaluation.samples} / {evaluation.control_samples}"
        return str(evaluation.samples)

    @property
    def window(self) -> str:
        evaluation = self.evaluation
        span = (evaluation.window_end - evaluation.window_start).total_seconds()
        start = timezone.localtime(evaluation.window_start).strftime("%H:%M:%S")
        end = timezone.localtime(evaluation.window_end).strftime("%H:%M:%S")
        return f"{start} to {end} ({duration_text(span)})"

    @property
    def threshold(self) -> str:
        return f"{self.gate.comparator} {self.evaluation.threshold:g}"

    @property
    def outcome_label(self) -> str:
        return OUTCOME_LABELS.get(self.evaluation.outcome, self.evaluation.outcome)


def evaluation_rows(evaluations: Iterable[GateEvaluation]) -> list[EvaluationRow]:
    return [EvaluationRow(e) for e in evaluations]


# --- The timeline's words -------------------------------------------------------------------

EVENT_LABELS = {
    ReleaseEventKind.CREATED: "created",
    ReleaseEventKind.EDITED: "edited",
    ReleaseEventKind.START_REQUESTED: "start requested",
    ReleaseEventKind.STARTED: "started",
    ReleaseEventKind.ADVANCED: "advanced",
    ReleaseEventKind.GO_REQUESTED: "go requested",
    ReleaseEventKind.PAUSED: "paused",
    ReleaseEventKind.RESUMED: "resumed",
    ReleaseEventKind.HALVED: "halved",
    ReleaseEventKind.ROLLED_BACK: "rolled back",
    ReleaseEventKind.COMPLETED: "completed",
    ReleaseEventKind.RETURNED_TO_DRAFT: "back to draft",
}


def event_label(event: ReleaseEvent, stages: dict[int, Stage]) -> str:
    """'advanced to canary', 'rolled back (automatic)'."""
    text = EVENT_LABELS.get(event.kind, event.kind)
    stage = stages.get(event.stage_index) if event.stage_index is not None else None
    if event.kind in ENTERS_STAGE and stage is not None:
        text += f" to {stage.name}"
    if event.automatic:
        text += " (automatic)"
    return text


# --- The dashboard --------------------------------------------------------------------------


def dashboard_releases(environments: Sequence) -> dict[int, list[ReleaseRow]]:
    """Each environment's live releases with their gate health, in five queries whatever
    the number of releases (the dashboard's registry: releasecontrol.dashboard)."""
    from .page_selectors import live_releases_by_environment
    from .selectors import latest_evaluations

    by_environment = live_releases_by_environment([env.pk for env in environments])
    releases = [r for rows in by_environment.values() for r in rows]
    latest = latest_evaluations(releases)
    return {pk: release_rows(rows, latest) for pk, rows in by_environment.items()}
