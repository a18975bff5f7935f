"""The DORA figures as one PostgreSQL statement over the deployments' facts (rollouts/dora.py
`facts`): the facts are computed once (a materialized CTE), then counted for the whole period
and per week of the moment each count belongs to, with percentile_cont for the durations."""

# The statement is built only from the constant column names and conditions below; every
# value (the period, the inner query's own) is a parameter.
# ruff: noqa: S608

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import connection, transaction
from django.db.models import QuerySet

from .dora import COUNTED, DURATIONS, FACTS, Period, Tally

FAILED = "status IN ('failed', 'rolled_back')"


def _inside(column: str) -> str:
    return f"({column} >= p.start_at AND {column} <= p.end_at)"


# The SQL twin of dora.COUNTED, line for line.
COUNTED_SQL = {
    "successes": _inside("succeeded_at"),
    "lead_time_samples": f"{_inside('succeeded_at')} AND commit_time IS NOT NULL",
    "changes": _inside("finished_at"),
    "change_failures": f"{_inside('finished_at')} AND ({FAILED} OR gate_rollback "
    "OR emergency_rollback)",
    "failed_or_rolled_back": f"{_inside('finished_at')} AND {FAILED}",
    "gate_rollbacks": f"{_inside('finished_at')} AND gate_rollback",
    "emergency_rollbacks": f"{_inside('finished_at')} AND emergency_rollback",
    "failures": f"{FAILED} AND {_inside('failure_at')}",
    "recovered": f"{FAILED} AND {_inside('failure_at')} AND next_success IS NOT NULL",
}
assert COUNTED_SQL.keys() == COUNTED.keys()


def _measures() -> list[str]:
    columns = [f"count(*) FILTER (WHERE {COUNTED_SQL[name]})" for name in COUNTED]
    for over, end, start, fractions in DURATIONS.values():
        for fraction in fractions:
            columns.append(
                f"percentile_cont({fraction}) WITHIN GROUP "
                f"(ORDER BY EXTRACT(EPOCH FROM {end} - {start})) "
                f"FILTER (WHERE {COUNTED_SQL[over]})"
            )
    return columns


def _statement(inner: str) -> str:
    measures = ", ".join(_measures())
    parts = [f"SELECT 'period' AS part, NULL::date AS week, {measures} FROM facts, p"]
    for moment in sorted({moment for _, moment in COUNTED.values()}):
        week = f"(date_trunc('week', {moment} AT TIME ZONE 'UTC'))::date"
        parts.append(
            f"SELECT '{moment}', {week}, {measures} FROM facts, p "
            f"WHERE {_inside(moment)} GROUP BY 2"
        )
    return (
        f"WITH facts ({', '.join(FACTS)}) AS MATERIALIZED ({inner}), "
        "p AS (SELECT %s::timestamptz AS start_at, %s::timestamptz AS end_at) "
        + " UNION ALL ".join(parts)
    )


def count_in_sql(found: QuerySet, period: Period) -> tuple[Tally, dict[dt.date, Tally]]:
    inner, params = found.query.sql_with_params()
    with transaction.atomic(), connection.cursor() as cursor:
        # A short statement whose estimate (the per-row subqueries) crosses jit_above_cost:
        # compiling it costs more than it saves (about 50 ms of a 100 ms answer).
        cursor.execute("SET LOCAL jit = off")
        cursor.execute(_statement(inner), [*params, period.start, period.end])
        rows = cursor.fetchall()
    names = list(COUNTED)
    total: Tally | None = None
    weekly: dict[dt.date, dict[str, Any]] = {}
    for part, week, *values in rows:
        counts = dict(zip(names, values[: len(names)], strict=True))
        rest = values[len(names) :]
        percentiles = {}
        for name, (_, _, _, fractions) in DURATIONS.items():
            percentiles[name], rest = list(rest[: len(fractions)]), rest[len(fractions) :]
        if part == "period":
            total = Tally(counts, percentiles)
            continue
        # Each grouping contributes the counts that belong to its moment.
        merged = weekly.setdefault(week, {"counts": dict.fromkeys(names, 0), "percentiles": {}})
        for name, (_, moment) in COUNTED.items():
            if moment == part:
                merged["counts"][name] = counts[name]
        for name, (over, *_) in DURATIONS.items():
            if COUNTED[over][1] == part:
                merged["percentiles"][name] = percentiles[name]
    assert total is not None
    empty = {name: [None] * len(d[3]) for name, d in DURATIONS.items()}
    return total, {
        week: Tally(m["counts"], {**empty, **m["percentiles"]}) for week, m in weekly.items()
    }
