"""The dead-man's switch: a live release whose gated metrics stopped arriving is paused.

A release is silent on a metric when no canary sample of it is newer than
`dead_man_seconds`, counted from the latest sample, or from when the stage began or its hold
(re)started if that is later (a resumed release gets a full period). Only pushed metrics
count: a Prometheus gate's silence is an `error` outcome, which the error limit handles."""

from __future__ import annotations

import datetime as dt
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
    ordered = sorted(pairs)
    table = MetricSample._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.release_id, p.metric, (SELECT s.time FROM "  # noqa: S608  (model's table)
            f"{table} AS s WHERE s.release_id = p.release_id AND s.metric = p.metric "
            "AND s.cohort = %s ORDER BY s.time DESC LIMIT 1) "
            "FROM unnest(%s::bigint[], %s::text[]) AS p(release_id, metric)",
            [Cohort.CANARY, [r for r, _ in ordered], [m for _, m in ordered]],
        )
        return {(release_id, metric): at for release_id, metric, at in cursor.fetchall()}


def dead_man_check(
    releases: list[Release], gates: list[Gate], *, now: dt.datetime
) -> dict[int, DeadMan]:
    """Release id -> why it is silent, for the given (in-progress) releases whose pushed,
    applying gates' metrics have had no sample for their `dead_man_seconds`."""
    wanted = {release.pk for release in releases}
    metrics: dict[int, set[str]] = {}
    for gate in gates:
        if gate.release_id in wanted and not gate.promql:
            metrics.setdefault(gate.release_id, set()).add(gate.metric)
    latest = metric_latest_sample_times(
        {(release_id, metric) for release_id, names in metrics.items() for metric in names}
    )
    dead = {}
    for release in releases:
        period = dt.timedelta(seconds=release.dead_man_seconds)
        began = [t for t in (release.stage_entered_at, release.hold_started_at) if t]
        silent = {}
        for metric in sorted(metrics.get(release.pk, ())):
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
