"""Retention: metric samples and gate evaluations older than METRIC_RETENTION_DAYS go.

Deleted in bounded batches, each its own short transaction, so pruning a month of samples
never holds a long lock nor one huge transaction, and a run stops after `max_batches` (the
next run carries on). Housekeeping under the retention setting, not an act of anyone's:
nothing is audited (the audit trail itself is never pruned)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from .models import GateEvaluation, MetricSample

PRUNE_BATCH = 10_000
PRUNE_MAX_BATCHES = 100


@dataclass(frozen=True)
class PruneReport:
    cutoff: dt.datetime
    samples_deleted: int
    evaluations_deleted: int
    complete: bool  # False: the run stopped at max_batches with old rows left


def retention_cutoff(now: dt.datetime | None = None) -> dt.datetime:
    return (now or timezone.now()) - dt.timedelta(days=settings.METRIC_RETENTION_DAYS)


def _delete_batches(model, time_column: str, cutoff: dt.datetime, batch: int, limit: int):
    table = model._meta.db_table
    # The time index finds the oldest rows; ids in a subquery bound each DELETE.
    sql = (
        f"DELETE FROM {table} WHERE id IN "  # noqa: S608  (names from the model, not input)
        f"(SELECT id FROM {table} WHERE {time_column} < %s ORDER BY {time_column} LIMIT %s)"
    )
    deleted, complete = 0, False
    for _ in range(limit):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [cutoff, batch])
            count = cursor.rowcount
        deleted += count
        if count < batch:
            complete = True
            break
    return deleted, complete


def metrics_prune(
    *,
    now: dt.datetime | None = None,
    batch: int = PRUNE_BATCH,
    max_batches: int = PRUNE_MAX_BATCHES,
) -> PruneReport:
    """Delete samples and evaluations older than the retention period, `batch` rows at a time,
    at most `max_batches` batches of each."""
    cutoff = retention_cutoff(now)
    samples, samples_done = _delete_batches(MetricSample, "time", cutoff, batch, max_batches)
    evaluations, evaluations_done = _delete_batches(
        GateEvaluation, "evaluated_at", cutoff, batch, max_batches
    )
    return PruneReport(cutoff, samples, evaluations, samples_done and evaluations_done)
