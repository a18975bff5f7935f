"""DORA figures from the deployment history, per environment and service over a period
(DESIGN.md, "Deployments"), computed in SQL aggregates, never by loading deployments:

- **deployment frequency**: deployments that succeeded in the period, per day;
- **lead time for changes**: from the commit's time to the deployment's success, p50 and p90
  (of the deployments that succeeded in the period);
- **change failure rate**: of the deployments that reached an outcome (succeeded or failed)
  in the period, the share that failed or were rolled back, that a gate rolled back through
  their linked release (a ReleaseEvent `rolled_back`, automatic) within
  CHANGE_FAILURE_WINDOW_HOURS of their success, or that were the latest success in their
  environment when an emergency rollback came within that window;
- **failed deployment recovery time**: from a failed deployment's failure (or a rolled-back
  one's rollback, if it had succeeded) in the period to the next success of that service in
  that environment, p50; failures not yet followed by a success are counted as unrecovered.

Each deployment's facts (its outcome's times, a gate or emergency rollback that blames it,
the next success after its failure) are one query (`facts`); on PostgreSQL one statement
aggregates them once, materialized, into the figures and the weekly trends
(rollouts/dora_sql.py). On SQLite (the embedded default, for a demo) the same facts are
counted in Python (`count_rows`), under the same definitions (`COUNTED`).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import (
    BooleanField,
    Case,
    DateTimeField,
    Exists,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.utils import timezone

from releasecontrol.models import Environment

from .models import Deployment, DeploymentStatus, ReleaseEvent, ReleaseEventKind, Rollback

MAX_DAYS = 366
FAILED_OUTCOMES = [DeploymentStatus.FAILED, DeploymentStatus.ROLLED_BACK]
SECONDS_PER_HOUR = 3600.0


def window() -> dt.timedelta:
    return dt.timedelta(hours=float(settings.CHANGE_FAILURE_WINDOW_HOURS))


def _after(name: str, delta: dt.timedelta) -> ExpressionWrapper:
    return ExpressionWrapper(OuterRef(name) + delta, output_field=DateTimeField())


def blamed_by_emergency_rollbacks(span: dt.timedelta) -> QuerySet:
    """The deployment each emergency rollback blames: the latest success in its environment
    before it, if that success came within `span` of it. Computed once per statement (the
    rollbacks are few), not once per deployment."""
    latest = Deployment.objects.filter(
        environment_id=OuterRef("environment_id"),
        succeeded_at__lt=OuterRef("created_at"),
    ).order_by("-succeeded_at", "-pk")
    return (
        Rollback.objects.annotate(
            blamed=Subquery(latest.values("pk")[:1]),
            blamed_at=Subquery(latest.values("succeeded_at")[:1]),
        )
        .filter(created_at__lte=ExpressionWrapper(F("blamed_at") + span, DateTimeField()))
        .values("blamed")
    )


def annotated(rows: QuerySet[Deployment]) -> QuerySet[Deployment]:
    """Each deployment with what DORA asks of it: a gate rollback of its release and an
    emergency rollback it was the latest success before (both within the window of its
    success), when it failed, and the next success of its service after that. Each
    correlated lookup runs only for the rows it can concern (a linked release, a failure)."""
    span = window()
    gate_rollback = ReleaseEvent.objects.filter(
        release_id=OuterRef("release_id"),
        kind=ReleaseEventKind.ROLLED_BACK,
        automatic=True,
        at__gte=OuterRef("succeeded_at"),
        at__lte=_after("succeeded_at", span),
    )
    next_success = Deployment.objects.filter(
        environment_id=OuterRef("environment_id"),
        service=OuterRef("service"),
        succeeded_at__gt=OuterRef("failure_at"),
    ).order_by("succeeded_at")
    return rows.annotate(
        gate_rollback=Case(
            When(release_id__isnull=True, then=Value(False)),
            default=Exists(gate_rollback),
            output_field=BooleanField(),
        ),
        emergency_rollback=Case(
            When(pk__in=blamed_by_emergency_rollbacks(span), then=Value(True)),
            default=Value(False),
            output_field=BooleanField(),
        ),
        failure_at=Case(
            When(status__in=FAILED_OUTCOMES, succeeded_at__isnull=True, then=F("finished_at")),
            When(status__in=FAILED_OUTCOMES, then=F("rolled_back_at")),
            default=None,
            output_field=DateTimeField(),
        ),
    ).annotate(
        next_success=Case(
            When(
                status__in=FAILED_OUTCOMES,
                then=Subquery(next_success.values("succeeded_at")[:1]),
            ),
            default=None,
            output_field=DateTimeField(),
        )
    )


@dataclass(frozen=True)
class Period:
    start: dt.datetime
    end: dt.datetime

    def has(self, moment: dt.datetime | None) -> bool:
        return moment is not None and self.start <= moment <= self.end

    @property
    def days(self) -> float:
        return (self.end - self.start).total_seconds() / 86400

    def days_of_week(self, monday: dt.datetime) -> float:
        start, end = max(self.start, monday), min(self.end, monday + dt.timedelta(days=7))
        return max(0.0, (end - start).total_seconds() / 86400)


# The facts `facts()` reads of each deployment, in this order (dora_sql.py names them too).
FACTS = (
    "status",
    "commit_time",
    "succeeded_at",
    "finished_at",
    "failure_at",
    "next_success",
    "gate_rollback",
    "emergency_rollback",
)


def facts(rows: QuerySet[Deployment], period: Period) -> QuerySet:
    """The deployments any figure of the period may count (a success, an outcome or a
    rollback inside it), with their facts: one query, whatever reads it."""
    inside = {"gte": period.start, "lte": period.end}
    touched = (
        Q(**{f"succeeded_at__{k}": v for k, v in inside.items()})
        | Q(**{f"finished_at__{k}": v for k, v in inside.items()})
        | Q(**{f"rolled_back_at__{k}": v for k, v in inside.items()})
    )
    return annotated(rows.filter(touched).order_by()).values_list(*FACTS)


def _failed(row: Any) -> bool:
    return row.status in FAILED_OUTCOMES


# What each count counts, and the moment whose week it belongs to. The SQL twin of each line
# is in rollouts/dora_sql.py (COUNTED_SQL); tests hold both to the same answers.
COUNTED: dict[str, tuple[Any, str]] = {
    "successes": (lambda r, p: p.has(r.succeeded_at), "succeeded_at"),
    "lead_time_samples": (
        lambda r, p: p.has(r.succeeded_at) and r.commit_time is not None,
        "succeeded_at",
    ),
    "changes": (lambda r, p: p.has(r.finished_at), "finished_at"),
    "change_failures": (
        lambda r, p: (
            p.has(r.finished_at) and (_failed(r) or r.gate_rollback or r.emergency_rollback)
        ),
        "finished_at",
    ),
    "failed_or_rolled_back": (lambda r, p: p.has(r.finished_at) and _failed(r), "finished_at"),
    "gate_rollbacks": (lambda r, p: p.has(r.finished_at) and r.gate_rollback, "finished_at"),
    "emergency_rollbacks": (
        lambda r, p: p.has(r.finished_at) and r.emergency_rollback,
        "finished_at",
    ),
    "failures": (lambda r, p: _failed(r) and p.has(r.failure_at), "failure_at"),
    "recovered": (
        lambda r, p: _failed(r) and p.has(r.failure_at) and r.next_success is not None,
        "failure_at",
    ),
}
# Durations: (the count whose rows they are measured over, end, start, percentiles).
DURATIONS = {
    "lead": ("lead_time_samples", "succeeded_at", "commit_time", (0.5, 0.9)),
    "recovery": ("recovered", "next_success", "failure_at", (0.5,)),
}


@dataclass
class Tally:
    """Counts and percentiles (seconds) of one group: the whole period, or one week."""

    counts: dict[str, int]
    percentiles: dict[str, list[float | None]]


def count_rows(rows: list[Any], period: Period) -> tuple[Tally, dict[dt.date, Tally]]:
    """The figures from the facts in Python (SQLite): the period's, and per week."""
    total: dict[str, int] = dict.fromkeys(COUNTED, 0)
    weekly: dict[dt.date, dict[str, int]] = {}
    durations: dict[tuple[str, dt.date | None], list[float]] = {}
    for row in rows:
        for name, (counts, moment) in COUNTED.items():
            if counts(row, period):
                total[name] += 1
                week = _monday(getattr(row, moment)).date()
                weekly.setdefault(week, dict.fromkeys(COUNTED, 0))[name] += 1
        for name, (over, end, start, _) in DURATIONS.items():
            if COUNTED[over][0](row, period):
                seconds = (getattr(row, end) - getattr(row, start)).total_seconds()
                week = _monday(getattr(row, COUNTED[over][1])).date()
                durations.setdefault((name, None), []).append(seconds)
                durations.setdefault((name, week), []).append(seconds)

    def tally(counts: dict[str, int], week: dt.date | None) -> Tally:
        return Tally(
            counts,
            {
                name: [_percentile(durations.get((name, week), []), f) for f in fractions]
                for name, (_, _, _, fractions) in DURATIONS.items()
            },
        )

    return tally(total, None), {week: tally(c, week) for week, c in weekly.items()}


def _percentile(values: list[float], fraction: float) -> float | None:
    """percentile_cont: linear interpolation between the closest ranks."""
    if not values:
        return None
    ordered = sorted(values)
    rank = fraction * (len(ordered) - 1)
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / SECONDS_PER_HOUR, 3)


@dataclass
class DoraWeek:
    week: str
    deployment_frequency_per_day: float = 0.0
    lead_time_hours_p50: float | None = None
    change_failure_rate: float | None = None
    recovery_time_hours_p50: float | None = None
    successes: int = 0
    changes: int = 0
    change_failures: int = 0


@dataclass
class DoraFigures:
    environment: str | None
    service: str | None
    days: int
    start: dt.datetime
    end: dt.datetime
    change_failure_window_hours: float
    deployment_frequency_per_day: float
    lead_time_hours: dict[str, float | None]
    change_failure_rate: float | None
    recovery_time_hours: dict[str, float | None]
    counts: dict[str, int]
    weeks: list[DoraWeek] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _week_of(monday: dt.date, tally: Tally, period: Period) -> DoraWeek:
    days = period.days_of_week(dt.datetime.combine(monday, dt.time(), tzinfo=dt.UTC))
    c, p = tally.counts, tally.percentiles
    return DoraWeek(
        week=monday.isoformat(),
        deployment_frequency_per_day=round(c["successes"] / days, 4) if days else 0.0,
        lead_time_hours_p50=_hours(p["lead"][0]),
        change_failure_rate=_rate(c["change_failures"], c["changes"]),
        recovery_time_hours_p50=_hours(p["recovery"][0]),
        successes=c["successes"],
        changes=c["changes"],
        change_failures=c["change_failures"],
    )


def dora_rows(environment: Environment | None, service: str | None) -> QuerySet[Deployment]:
    rows = Deployment.objects.all()
    if environment is not None:
        rows = rows.filter(environment=environment)
    if service:
        rows = rows.filter(service=service)
    return rows


def dora_figures(
    *,
    environment: Environment | None = None,
    service: str | None = None,
    days: int = 30,
    now: dt.datetime | None = None,
) -> DoraFigures:
    """The four figures over the last `days` days (to now), with their counts and weekly
    trends: one query on PostgreSQL, whatever the number of deployments."""
    end = now or timezone.now()
    period = Period(end - dt.timedelta(days=days), end)
    found = facts(dora_rows(environment, service), period)
    if connection.vendor == "postgresql":
        from .dora_sql import count_in_sql

        total, weekly = count_in_sql(found, period)
    else:
        total, weekly = count_rows(list(found.values_list(*FACTS, named=True)), period)
    counts = {**total.counts, "unrecovered": total.counts["failures"] - total.counts["recovered"]}
    lead, recovery = total.percentiles["lead"], total.percentiles["recovery"]
    return DoraFigures(
        environment=environment.slug if environment else None,
        service=service,
        days=days,
        start=period.start,
        end=period.end,
        change_failure_window_hours=float(settings.CHANGE_FAILURE_WINDOW_HOURS),
        deployment_frequency_per_day=round(counts["successes"] / period.days, 4),
        lead_time_hours={"p50": _hours(lead[0]), "p90": _hours(lead[1])},
        change_failure_rate=_rate(counts["change_failures"], counts["changes"]),
        recovery_time_hours={"p50": _hours(recovery[0])},
        counts=counts,
        weeks=[_week_of(w, weekly[w], period) for w in sorted(weekly)],
    )


def _monday(value: dt.datetime) -> dt.datetime:
    """The start (Monday 00:00 UTC) of the week a moment falls in."""
    day = value.astimezone(dt.UTC).date()
    return dt.datetime.combine(day - dt.timedelta(days=day.weekday()), dt.time(), tzinfo=dt.UTC)
