"""The dead-man's switch: a live release whose gated metrics stopped arriving is paused.

A release is silent on a metric when no canary sample of it is newer than
`dead_man_seconds`, counted from the latest sample, or from when the stage began or its hold
(re)started if that is later (a resumed release gets a full period). Only pushed metrics
count: a Prometheus gate's silence is an `error` outcome, which the error limit handles."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from django.db import connection

from .models import Cohort, Gate, MetricSample, Release


@dataclass(frozen=True)
class DeadMan:
    reason: str
    evidence: dict[str, Any]


def metric_latest_sample_times(
    pairs: set[tuple[int, str]],
) -> dict[tuple[int, str], dt.datetime | None]:
    """The newest canary sample time of each (release id, metric), in one query: one backward
    step of the window index per pair, however many samples there are."""
    if not pairs:
        return {}
    if connection.vendor != "postgresql":
        # SQLite, the embedded default: a few demo releases, one indexed lookup per pair.
        return {
            (release_id, metric): MetricSample.objects.filter(
                release_id=release_id, metric=metric, cohort=Cohort.CANARY
            )
            .order_by("-time")
            .values_list("time", flat=True)
            .first()
            for release_id, metric in pairs
        }
    table = MetricSample._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.release_id, p.metric, (SELECT s.time FROM "  # noqa: S608  (model's table)
            f"{table} AS s WHERE s.release_id = p.release_id AND s.metric = p.metric "
            "AND s.cohort = %s ORDER BY s.time DESC LIMIT 1) "
            "FROM json_to_recordset(%s::json) AS p(release_id bigint, metric text)",
            [Cohort.CANARY, json.dumps([{"release_id": r, "metric": m} for r, m in pairs])],
        )
        return {(release_id, metric): at for release_id, metric, at in cursor.fetchall()}


def dead_man_check(
    releases: list[Release],
    gates: list[Gate],
    *,
    now: dt.datetime,
    results: dict[int, Any] | None = None,
    newest: dict[tuple[int, str], dt.datetime] | None = None,
) -> dict[int, DeadMan]:
    """Release id -> why it is silent, for the given (in-progress) releases whose pushed,
    applying gates' metrics have had no sample for their `dead_man_seconds`. What this tick
    already saw proves a metric alive, and only the others are looked up: a gate result with
    samples in a window no longer than that period, or a sample newer than the period among
    `newest` (the newest canary sample per (release id, metric) the tick's windows saw)."""
    results = results or {}
    newest = newest or {}
    wanted = {release.pk: release for release in releases}
    metrics: dict[int, set[str]] = {}
    alive: set[tuple[int, str]] = set()
    for gate in gates:
        release = wanted.get(gate.release_id)
        if release is None or gate.promql:
            continue
        metrics.setdefault(gate.release_id, set()).add(gate.metric)
        result = results.get(gate.id)
        if result and result.samples and gate.window_seconds <= release.dead_man_seconds:
            alive.add((gate.release_id, gate.metric))
    for (release_id, metric), latest in newest.items():
        release = wanted.get(release_id)
        if release is not None and now - latest < dt.timedelta(seconds=release.dead_man_seconds):
            alive.add((release_id, metric))
    latest = metric_latest_sample_times(
        {
            (release_id, metric)
            for release_id, names in metrics.items()
            for metric in names
            if (release_id, metric) not in alive
        }
    )
    dead = {}
    for release in releases:
        period = dt.timedelta(seconds=release.dead_man_seconds)
        began = [t for t in (release.stage_entered_at, release.hold_started_at) if t]
        silent = {}
        for metric in sorted(metrics.get(release.pk, ())):
            if (release.pk, metric) in alive:
                continue
            last = latest.get((release.pk, metric))
            since = max([t for t in (last, *began) if t], default=None)
            if since is not None and now - since >= period:
                silent[metric] = last.isoformat() if last else None
        if silent:
            dead[release.pk] = DeadMan(
                reason=(
                    f"Dead man's switch: no samples of {', '.join(silent)} "
                    f"for {release.dead_man_seconds} s"
                ),
                evidence={
                    "dead_man_seconds": release.dead_man_seconds,
                    "last_sample_at": silent,
                    "checked_at": now.isoformat(),
                },
            )
    return dead
