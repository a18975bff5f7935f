"""The gate monitor's tick: every GATE_MONITOR_INTERVAL seconds a Celery worker evaluates every
in-progress and paused release's gates at once, records what it saw, and acts.

A tick runs in two steps per batch of releases:

1. One transaction takes the batch with `select_for_update(skip_locked=True)` (a release
   another worker holds is left to it), evaluates every due gate of the batch in one call
   (`gates_evaluate`: one aggregate query for every pushed gate), records the evaluations and
   the gates' running counters, restarts the hold of a stage whose gate failed short of its
   action, writes advisory alerts, and decides per release what to do (`Decision`).
2. Each decision is then carried out in a transaction of its own (rollouts/automatic.py),
   through the release services as the system actor. The audit chain lock is held from an
   audit record to its commit: acting inside the batch's transaction would hold every writer
   on the site for the rest of the batch, and two workers acting in one environment could
   deadlock. Each action re-locks its release and acts only if the release is still as
   evaluated, so a second worker that evaluated it in between never acts twice.

A gate is evaluated when its stage has run one full window, and no sooner than half an
interval after its previous evaluation (two ticks queued back to back count once toward the
Nth-consecutive rule). Evaluations are kept when the outcome changes and at least once a
minute per gate. Paused releases are evaluated and shown; only a rollback still fires for
them, and they never advance.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from django.conf import settings
from django.db import connection, transaction
from django.db.models import prefetch_related_objects
from django.utils import timezone

from releasecontrol.collector import with_collector_paused
from releasecontrol.models import Environment
from releasecontrol.requestable import blackout_now
from releasecontrol.tasks import monitor_heartbeat

from .automatic import Decision, decision_carry_out, evidence_of, gate_alert_notify
from .deadman import dead_man_check
from .gates import GateCounters, gate_step, gates_evaluate
from .models import (
    MONITORED_STATUSES,
    Gate,
    GateEvaluation,
    NoData,
    OnFailure,
    Outcome,
    Release,
    ReleaseStatus,
    Stage,
)
from .services import needs_request, release_hold_restart

logger = logging.getLogger("rollouts.monitor")

RECORD_EVERY = dt.timedelta(seconds=60)  # an unchanged outcome is still kept once a minute

# The strongest action wins when several gates act on one release in one tick.
_STRENGTH = {
    OnFailure.ROLLBACK: 4,
    OnFailure.HALVE: 3,
    OnFailure.REVIEW: 2,
    OnFailure.PAUSE: 1,
}
# A paused release waits for people: only a rollback still fires (a halve would halve again
# on every tick of a gate that keeps failing; pause and review are where it already is).
_ACTS_WHEN_PAUSED = {OnFailure.ROLLBACK}
# Release columns the tick never reads (each action loads its release again).
_UNREAD = ("allowlist", "paused_reason", "created_at", "updated_at")


@dataclass
class TickReport:
    now: dt.datetime
    releases: int = 0
    gates_evaluated: int = 0
    evaluations_recorded: int = 0
    alerts: int = 0
    # (release id, action) of what was done: rollback, halve, review, pause, advance.
    actions: list[tuple[int, str]] = field(default_factory=list)
    # Releases that changed between evaluation and action (someone else acted).
    skipped: list[int] = field(default_factory=list)
    # (release id, action, why) of actions a service refused.
    failed: list[tuple[int, str, str]] = field(default_factory=list)
    duration_seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "now": self.now.isoformat(),
            "releases": self.releases,
            "gates_evaluated": self.gates_evaluated,
            "evaluations_recorded": self.evaluations_recorded,
            "alerts": self.alerts,
            "actions": [list(a) for a in self.actions],
            "skipped": self.skipped,
            "failed": [list(f) for f in self.failed],
            "duration_seconds": round(self.duration_seconds, 3),
        }


@with_collector_paused
def monitor_tick(*, now: dt.datetime | None = None) -> TickReport:
    """One pass over every monitored release, batch after batch (GATE_MONITOR_BATCH per
    transaction); then the heartbeat, stamped only by a tick that completed.

    Thousands of gates allocate enough objects to trigger full cyclic collections, each
    walking the whole heap to find nothing: none runs during a tick (releasecontrol/
    collector.py); the little cyclic garbage a tick leaves waits for the next one after it."""
    now = now or timezone.now()
    report = TickReport(now=now)
    started = time.monotonic()
    after_id = 0
    while True:
        decisions, taken, after_id = _batch_evaluate(now, after_id, report)
        for decision in decisions:
            decision_carry_out(decision, report)
        if taken < settings.GATE_MONITOR_BATCH:
            break
    report.duration_seconds = time.monotonic() - started
    monitor_heartbeat()  # its own statement, after the batches: workers never queue on it
    if report.actions or report.failed:
        logger.info("gate_monitor.tick", extra={"event": "gate_monitor.tick", **report.summary()})
    return report


# --- One batch: take, evaluate, record, decide --------------------------------------------


@dataclass(frozen=True)
class Seen:
    """One gate's evaluation in this tick and what the rules make of it."""

    result: Any  # gates.GateResult
    step: Any  # gates.GateStep
    failure_counted: bool  # this evaluation added to the consecutive failures
    evaluation: GateEvaluation | None  # the row kept for it, if one was


def _batch_evaluate(
    now: dt.datetime, after_id: int, report: TickReport
) -> tuple[list[Decision], int, int]:
    with transaction.atomic():
        releases = list(
            Release.objects.filter(status__in=MONITORED_STATUSES, pk__gt=after_id)
            .defer(*_UNREAD)
            .select_for_update(skip_locked=True, of=("self",))
            .order_by("pk")[: settings.GATE_MONITOR_BATCH]
        )
        if not releases:
            return [], 0, after_id
        report.releases += len(releases)
        by_id = {release.pk: release for release in releases}
        _environments_attach(releases)
        stages = _stages_of(by_id)
        # Only production's trust rule reads who edited the plan (gates.untrusted_submitters).
        prefetch_related_objects(
            [r for r in releases if r.environment.is_production], "plan_editors"
        )
        gates = list(Gate.objects.filter(release_id__in=by_id).order_by("release_id", "pk"))
        to_release = Gate.release.field  # each gate's release, cached as select_related would
        for gate in gates:
            to_release.set_cached_value(gate, by_id[gate.release_id])
        applying = [gate for gate in gates if _applies(gate, stages)]
        spacing = dt.timedelta(seconds=settings.GATE_MONITOR_INTERVAL / 2)
        due = [gate for gate in applying if _due(gate, now, spacing)]
        newest: dict[tuple[int, str], dt.datetime] = {}  # the dead man's switch reads it
        results = gates_evaluate(due, now=now, newest=newest) if due else {}
        report.gates_evaluated += len(due)
        seen = _record(due, results, now, report)

        live = [r for r in releases if r.status == ReleaseStatus.IN_PROGRESS]
        dead = dead_man_check(live, applying, now=now, results=results, newest=newest)
        per_release: dict[int, list[Gate]] = {}
        for gate in applying:
            per_release.setdefault(gate.release_id, []).append(gate)
        blackouts: dict[int, str | None] = {}
        decisions = []
        for release in releases:
            decision = _decide(
                release,
                stages.get(release.pk, {}),
                per_release.get(release.pk, []),
                seen,
                dead.get(release.pk),
                now,
                blackouts,
            )
            if decision is not None:
                decisions.append(decision)
        report.alerts += _alert_advisory(due, seen)
    return decisions, len(releases), releases[-1].pk


def _environments_attach(releases: list[Release]) -> None:
    """Each release's environment, one instance per environment (a batch holds a handful)."""
    environments = Environment.objects.in_bulk({release.environment_id for release in releases})
    to_environment = Release.environment.field
    for release in releases:
        to_environment.set_cached_value(release, environments[release.environment_id])


class StageRow(NamedTuple):
    """What the tick reads of a stage (a row, not a model instance: a batch has thousands)."""

    id: int
    index: int
    name: str
    hold_seconds: int
    needs_go: bool


Stages = dict[int, dict[int, StageRow]]  # release id -> stage index -> stage


def _stages_of(releases: dict[int, Release]) -> Stages:
    stages: Stages = {release_id: {} for release_id in releases}
    rows = Stage.objects.filter(release_id__in=releases).values_list(
        "release_id", *StageRow._fields
    )
    for release_id, *row in rows:
        stages[release_id][row[1]] = StageRow(*row)
    return stages


def _current_stage(release: Release, stages: dict[int, StageRow]) -> StageRow | None:
    if release.current_stage_index is None:
        return None
    return stages.get(release.current_stage_index)


def _applies(gate: Gate, stages: Stages) -> bool:
    """A release-wide gate always; a stage's gate while its stage is the current one."""
    if gate.stage_id is None:
        return True
    stage = _current_stage(gate.release, stages[gate.release_id])
    return stage is not None and stage.id == gate.stage_id


def _first_evaluation_at(gate: Gate) -> dt.datetime | None:
    began = gate.release.stage_entered_at or gate.release.started_at
    return began + dt.timedelta(seconds=gate.window_seconds) if began else None


def _due(gate: Gate, now: dt.datetime, spacing: dt.timedelta) -> bool:
    first = _first_evaluation_at(gate)
    if first is None or now < first:
        return False
    return gate.last_evaluated_at is None or now - gate.last_evaluated_at >= spacing


def _record(
    due: list[Gate], results: dict[int, Any], now: dt.datetime, report: TickReport
) -> dict[int, Seen]:
    """Each due gate through the rules (gate_step); its counters and latest outcome saved; an
    evaluation row kept when the outcome changed, when a minute passed since the last kept
    one, or when it makes the release act."""
    steps = {}
    kept: dict[int, GateEvaluation] = {}
    error_limit = settings.GATE_ERROR_LIMIT
    for gate in due:
        result = results[gate.id]
        step = gate_step(
            gate,
            GateCounters(gate.consecutive_failures, gate.consecutive_errors),
            result.outcome,
            error_limit=error_limit,
        )
        counted = step.counters.consecutive_failures > gate.consecutive_failures
        keep = (
            gate.last_recorded_at is None
            or result.outcome != gate.last_outcome
            or now - gate.last_recorded_at >= RECORD_EVERY
            or step.act
            or step.errors_exhausted
            or step.no_data_action == "pause"
        )
        gate.consecutive_failures = step.counters.consecutive_failures
        gate.consecutive_errors = step.counters.consecutive_errors
        gate.last_outcome = result.outcome
        gate.last_evaluated_at = now
        if keep:
            gate.last_recorded_at = now
            kept[gate.id] = _evaluation(gate, result)
        steps[gate.id] = (result, step, counted)
    _gates_save(due, now)
    GateEvaluation.objects.bulk_create(kept.values(), batch_size=2000)
    report.evaluations_recorded += len(kept)
    return {pk: Seen(*parts, kept.get(pk)) for pk, parts in steps.items()}


def _evaluation(gate: Gate, result: Any) -> GateEvaluation:
    return GateEvaluation(
        gate_id=gate.id,
        release_id=gate.release_id,
        stage_index=gate.release.current_stage_index,
        evaluated_at=gate.last_evaluated_at,
        outcome=result.outcome,
        value=result.value,
        samples=result.samples,
        control_value=result.control_value,
        control_samples=result.control_samples,
        p_value=result.p_value,
        window_start=result.window_start,
        window_end=result.window_end,
        threshold=result.threshold,
        source=result.source[:500],
        detail=result.detail,
    )


def _gates_save(gates: list[Gate], now: dt.datetime) -> None:
    """The running state of every evaluated gate in one UPDATE, its rows as one JSON document
    (bulk_update's CASE per row grows quadratically with thousands of gates, and adapting
    arrays of thousands of values costs more than the UPDATE itself); jsonb, parsed once,
    where json would parse each row again for every field read from it."""
    if not gates:
        return
    if connection.vendor != "postgresql":
        # SQLite, the embedded default (a few demo gates): the ORM's bulk update.
        for gate in gates:
            gate.last_evaluated_at = now
        Gate.objects.bulk_update(
            gates,
            [
                "consecutive_failures",
                "consecutive_errors",
                "last_outcome",
                "last_evaluated_at",
                "last_recorded_at",
            ],
        )
        return
    rows = json.dumps(
        [
            [
                g.id,
                g.consecutive_failures,
                g.consecutive_errors,
                g.last_outcome,
                g.last_recorded_at == now,
            ]
            for g in gates
        ]
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Gate._meta.db_table} AS g SET "  # noqa: S608  (the model's own table)
            "consecutive_failures = (v->>1)::integer, consecutive_errors = (v->>2)::integer, "
            "last_outcome = v->>3, last_evaluated_at = %s, "
            "last_recorded_at = CASE WHEN (v->>4)::boolean THEN %s ELSE g.last_recorded_at END "
            "FROM jsonb_array_elements(%s::jsonb) AS v WHERE g.id = (v->>0)::bigint",
            [now, now, rows],
        )


# --- Deciding -----------------------------------------------------------------------------


def _from(gates: list[Gate], seen: dict[int, Seen]) -> dict[str, Any]:
    return {
        "evidence": [evidence_of(g, seen[g.id].result) for g in gates],
        "evaluations": [seen[g.id].evaluation for g in gates if seen[g.id].evaluation],
    }


def _decide(
    release: Release,
    stages: dict[int, StageRow],
    gates: list[Gate],
    seen: dict[int, Seen],
    dead: Any,
    now: dt.datetime,
    blackouts: dict[int, str | None],
) -> Decision | None:
    live = release.status == ReleaseStatus.IN_PROGRESS
    evaluated = [g for g in gates if g.id in seen and not g.advisory]

    # Gates that act now: the strongest action wins, every acting gate is evidence.
    acting = [
        g for g in evaluated if seen[g.id].step.act and (live or g.on_failure in _ACTS_WHEN_PAUSED)
    ]
    if acting:
        action = max((g.on_failure for g in acting), key=_STRENGTH.__getitem__)
        reason = "; ".join(
            f"Gate {g.name} failed {g.consecutive_failures} consecutive time(s): "
            f"{seen[g.id].result.detail}"
            for g in acting
        )
        return Decision.of(release, action, reason=reason, **_from(acting, seen))
    if not live:
        return None  # paused: evaluated and shown, never paused again nor advanced

    if any(seen[g.id].failure_counted for g in evaluated):
        # A failure short of the action: the stage's hold starts again.
        release_hold_restart(release=release, at=now)
        release.hold_started_at = now

    blind = [g for g in evaluated if seen[g.id].step.errors_exhausted]
    if blind:
        reason = "; ".join(
            f"Gate {g.name} errored {g.consecutive_errors} times in a row "
            f"({seen[g.id].result.detail}): the monitor does not act blind"
            for g in blind
        )
        return Decision.of(release, OnFailure.PAUSE, reason=reason, **_from(blind, seen))
    empty = [g for g in evaluated if seen[g.id].step.no_data_action == "pause"]
    if empty:
        reason = "; ".join(
            f"Gate {g.name} had no data ({seen[g.id].result.detail}); its no-data policy pauses"
            for g in empty
        )
        return Decision.of(release, OnFailure.PAUSE, reason=reason, **_from(empty, seen))
    if dead is not None:
        return Decision.of(release, OnFailure.PAUSE, reason=dead.reason, evidence=[dead.evidence])
    return _advance_decision(release, stages, gates, seen, now, blackouts)


def _latest_success(gate: Gate) -> bool:
    """The gate's latest evaluation in this stage passed (`pass` on no data counts outside
    production only)."""
    first = _first_evaluation_at(gate)
    if gate.last_evaluated_at is None or first is None or gate.last_evaluated_at < first:
        return False  # not yet evaluated in this stage
    if gate.last_outcome == Outcome.SUCCESS:
        return True
    return (
        gate.last_outcome == Outcome.NO_DATA
        and gate.no_data == NoData.PASS
        and not gate.release.environment.is_production
    )


def _advance_decision(
    release: Release,
    stages: dict[int, StageRow],
    gates: list[Gate],
    seen: dict[int, Seen],
    now: dt.datetime,
    blackouts: dict[int, str | None],
) -> Decision | None:
    """Advance when the hold has passed, every acting gate's latest evaluation is a success,
    no request for the next step is open and no blackout window is open."""
    stage = _current_stage(release, stages)
    if stage is None or release.pending_request_id is not None:
        return None
    following = stages.get(stage.index + 1)
    if following is not None and following.needs_go and not needs_request(release):
        return None  # where no approval is required, a person's advance is the go
    held_since = release.hold_started_at or release.stage_entered_at
    if held_since is None or now < held_since + dt.timedelta(seconds=stage.hold_seconds):
        return None
    acting = [g for g in gates if not g.advisory]
    if not all(_latest_success(g) for g in acting):
        return None
    if release.environment_id not in blackouts:
        blackouts[release.environment_id] = blackout_now(release.environment, now)
    if blackouts[release.environment_id]:
        return None
    return Decision.of(
        release,
        "advance",
        reason=f"Stage {stage.name} held {stage.hold_seconds} s and every gate passed",
        **_from([g for g in acting if g.id in seen], seen),
    )


def _alert_advisory(due: list[Gate], seen: dict[int, Seen]) -> int:
    """An advisory gate alerts once per breach: on the failure that would have made an
    acting gate act."""
    alerts = 0
    for gate in due:
        if (
            gate.advisory
            and seen[gate.id].result.outcome == Outcome.FAILURE
            and gate.consecutive_failures == gate.failures_to_act
        ):
            gate_alert_notify(gate, seen[gate.id].result, seen[gate.id].evaluation)
            alerts += 1
    return alerts
