"""The set-wise window aggregate behind every pushed-metric gate: one SQL query answers any
number of windows (every push gate of a monitor tick, or every point of a gate replay).

Each window is (start, end] over one release's samples of one metric and cohort. For each it
returns the count, avg, min, max, sum, the gate's percentile, the sum of `total` (trials,
for binomial and Poisson baselines) and, when asked, the values themselves (Mann-Whitney U);
once over every sample and once over the *trusted* samples only (those whose submitter is not
in the window's `untrusted` ids: in production, the release's requester and plan editors).

On PostgreSQL this is one query: the windows go in as one JSON parameter
(`json_to_recordset`, however many windows), each joined LATERAL to an index range scan of
`sample_window_idx (release, metric, cohort, time)`, with `percentile_cont` and `FILTER` for
the trusted half. On SQLite (the embedded default of `./scripts/run.sh`) one query fetches
the windows' rows (the windows go in as one JSON parameter) and Python aggregates them the
same way.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import connection

from rollouts.models import Aggregate, MetricSample

QUANTILES = {Aggregate.P50: 0.5, Aggregate.P95: 0.95, Aggregate.P99: 0.99}


@dataclass(frozen=True, kw_only=True, slots=True)
class WindowRequest:
    release_id: int
    metric: str
    cohort: str
    start: datetime  # exclusive
    end: datetime  # inclusive
    quantile: float | None = None  # the percentile to compute (0.95 for p95), if any
    untrusted: tuple[int, ...] = ()  # submitters whose samples never count toward a success
    want_values: bool = False  # return the values themselves (rank tests)


@dataclass(kw_only=True, slots=True)  # not frozen: a tick builds ten thousand of these
class SampleStats:
    count: int = 0
    avg: float | None = None
    min: float | None = None
    max: float | None = None
    sum: float | None = None
    quantile: float | None = None
    total_sum: float | None = None  # sum of `total` over the samples that have one
    total_count: int = 0  # samples that have a `total`
    values: tuple[float, ...] | None = None

    def value(self, aggregate: str, window_seconds: float) -> float | None:
        """The gate's aggregate over these samples (None without samples)."""
        if not self.count:
            return None
        if aggregate == Aggregate.COUNT:
            return float(self.count)
        if aggregate == Aggregate.RATE:
            return (self.sum or 0.0) / window_seconds
        if aggregate in QUANTILES:
            return self.quantile
        return {
            Aggregate.AVG: self.avg,
            Aggregate.MIN: self.min,
            Aggregate.MAX: self.max,
            Aggregate.SUM: self.sum,
        }[aggregate]


@dataclass(kw_only=True, slots=True)
class WindowStats:
    all: SampleStats  # every sample: failure evidence counts from anyone
    trusted: SampleStats  # the samples that may count toward a success
    # The newest sample's time (PostgreSQL; None on SQLite, and without samples): the dead
    # man's switch takes it as proof that the metric still arrives.
    latest: datetime | None = None


def window_stats(requests: Sequence[WindowRequest]) -> list[WindowStats]:
    """The statistics of each window, in the order asked: one query for all of them."""
    if not requests:
        return []
    if connection.vendor == "postgresql":
        return _postgresql(requests)
    return _fetched_rows(requests)


def percentile_cont(values: Sequence[float], fraction: float) -> float | None:
    """PostgreSQL's percentile_cont: linear interpolation between the closest ranks."""
    if not values:
        return None
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


# --- PostgreSQL: one query, the windows as JSON rows joined LATERAL ----------------------

_SQL = """
WITH g AS (
    SELECT i, r AS release_id, m AS metric, c AS cohort, s AS ws, e AS we, q, w AS want,
           u, cardinality(u) > 0 AS strict
    FROM json_to_recordset(%s::json)
         AS x(i int, r bigint, m text, c text, s timestamptz, e timestamptz, q float8,
              u bigint[], w bool)
)
SELECT g.i, g.strict, s.*
FROM g CROSS JOIN LATERAL (
    SELECT max(m.time), count(*), avg(m.value), min(m.value), max(m.value), sum(m.value),
           percentile_cont(g.q) WITHIN GROUP (ORDER BY m.value) FILTER (WHERE g.q IS NOT NULL),
           sum(m.total), count(m.total),
           array_agg(m.value) FILTER (WHERE g.want){trusted}
    FROM (
        SELECT {value} AS value, {total} AS total, {time} AS time,
               g.strict AND {submitter} <> ALL(g.u) AS tr
        FROM {table}
        WHERE {release} = g.release_id AND {metric} = g.metric AND {cohort} = g.cohort
          AND {time} > g.ws AND {time} <= g.we
    ) m
) s
"""


# The same aggregates over the trusted samples, when any window has untrusted submitters.
_TRUSTED = """,
           count(*) FILTER (WHERE m.tr), avg(m.value) FILTER (WHERE m.tr),
           min(m.value) FILTER (WHERE m.tr), max(m.value) FILTER (WHERE m.tr),
           sum(m.value) FILTER (WHERE m.tr),
           percentile_cont(g.q) WITHIN GROUP (ORDER BY m.value)
               FILTER (WHERE g.q IS NOT NULL AND m.tr),
           sum(m.total) FILTER (WHERE m.tr), count(m.total) FILTER (WHERE m.tr),
           array_agg(m.value) FILTER (WHERE g.want AND m.tr)"""


def _sql(*, trusted: bool) -> str:
    quote = connection.ops.quote_name
    column = {f.name: quote(f.column) for f in MetricSample._meta.concrete_fields}
    return _SQL.format(
        trusted=_TRUSTED if trusted else "",
        table=quote(MetricSample._meta.db_table),
        value=column["value"],
        total=column["total"],
        submitter=column["submitted_by"],
        release=column["release"],
        metric=column["metric"],
        cohort=column["cohort"],
        time=column["time"],
    )


def _stats(row: Sequence, offset: int, want_values: bool) -> SampleStats:
    count, avg, low, high, total, quantile, trials, with_trials, values = row[offset : offset + 9]
    return SampleStats(
        count=count,
        avg=avg,
        min=low,
        max=high,
        sum=total,
        quantile=quantile,
        total_sum=trials,
        total_count=with_trials,
        values=tuple(values or ()) if want_values else None,
    )


def _parameters(requests: Sequence[WindowRequest]) -> list[str]:
    """The windows as one JSON parameter: cheap to send whatever the number of windows (a
    list parameter per column costs psycopg more to adapt than the query takes to run)."""
    iso: dict[datetime, str] = {}  # a tick's windows share their ends: format each once

    def text(moment: datetime) -> str:
        if moment not in iso:
            iso[moment] = moment.isoformat()
        return iso[moment]

    windows = json.dumps(
        [
            {
                "i": i,
                "r": r.release_id,
                "m": r.metric,
                "c": r.cohort,
                "s": text(r.start),
                "e": text(r.end),
                "q": r.quantile,
                "u": list(r.untrusted),
                "w": r.want_values,
            }
            for i, r in enumerate(requests)
        ],
        separators=(",", ":"),
    )
    return [windows]


def _postgresql(requests: Sequence[WindowRequest]) -> list[WindowStats]:
    out: list[WindowStats | None] = [None] * len(requests)
    with connection.cursor() as cursor:
        cursor.execute(_sql(trusted=any(r.untrusted for r in requests)), _parameters(requests))
        for row in cursor.fetchall():
            index, strict, latest = row[0], row[1], row[2]
            want = requests[index].want_values
            every = _stats(row, 3, want)
            trusted = _stats(row, 12, want) if strict else every
            out[index] = WindowStats(all=every, trusted=trusted, latest=latest)
    return out  # type: ignore[return-value]


# --- SQLite (the embedded default): one query for the rows, aggregated here -------------


def _fetched_rows(requests: Sequence[WindowRequest]) -> list[WindowStats]:
    quote = connection.ops.quote_name
    column = {f.name: quote(f.column) for f in MetricSample._meta.concrete_fields}
    as_text = connection.ops.adapt_datetimefield_value
    windows = json.dumps(
        [
            [i, r.release_id, r.metric, r.cohort, as_text(r.start), as_text(r.end)]
            for i, r in enumerate(requests)
        ]
    )
    sql = f"""
        WITH g AS (
            SELECT json_extract(value, '$[0]') AS i, json_extract(value, '$[1]') AS release_id,
                   json_extract(value, '$[2]') AS metric, json_extract(value, '$[3]') AS cohort,
                   json_extract(value, '$[4]') AS ws, json_extract(value, '$[5]') AS we
            FROM json_each(%s)
        )
        SELECT g.i, m.{column["value"]}, m.{column["total"]}, m.{column["submitted_by"]}
        FROM g JOIN {quote(MetricSample._meta.db_table)} m
          ON m.{column["release"]} = g.release_id AND m.{column["metric"]} = g.metric
         AND m.{column["cohort"]} = g.cohort
         AND m.{column["time"]} > g.ws AND m.{column["time"]} <= g.we
    """  # noqa: S608  (identifiers from the model, values as parameters)
    rows: list[list[tuple[float, float | None, int]]] = [[] for _ in requests]
    with connection.cursor() as cursor:
        cursor.execute(sql, [windows])
        for index, value, total, submitter in cursor.fetchall():
            rows[index].append((value, total, submitter))
    out = []
    for request, window_rows in zip(requests, rows, strict=True):
        every = _aggregate(request, window_rows)
        if request.untrusted:
            untrusted = set(request.untrusted)
            trusted = _aggregate(request, [r for r in window_rows if r[2] not in untrusted])
        else:
            trusted = every
        out.append(WindowStats(all=every, trusted=trusted))
    return out


def _aggregate(request: WindowRequest, rows: list[tuple[float, float | None, int]]) -> SampleStats:
    values = [value for value, _, _ in rows]
    totals = [total for _, total, _ in rows if total is not None]
    if not values:
        return SampleStats(values=() if request.want_values else None)
    return SampleStats(
        count=len(values),
        avg=sum(values) / len(values),
        min=min(values),
        max=max(values),
        sum=float(sum(values)),
        quantile=percentile_cont(values, request.quantile) if request.quantile else None,
        total_sum=float(sum(totals)) if totals else None,
        total_count=len(totals),
        values=tuple(values) if request.want_values else None,
    )
