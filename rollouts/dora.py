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

PostgreSQL computes the percentiles (percentile_cont); on SQLite (the embedded default) only
the durations the percentiles need are read, one column pair per figure.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import (
    Aggregate,
    Case,
    Count,
    DateTimeField,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    FloatField,
    Func,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    When,
)
from django.db.models.functions import TruncWeek
from django.utils import timezone

from releasecontrol.models import Environment

from .models import Deployment, DeploymentStatus, ReleaseEvent, ReleaseEventKind, Rollback

MAX_DAYS = 366
FAILED_OUTCOMES = [DeploymentStatus.FAILED, DeploymentStatus.ROLLED_BACK]
SECONDS_PER_HOUR = 3600.0


class Epoch(Func):
    """An interval in seconds (PostgreSQL)."""

    template = "EXTRACT(EPOCH FROM %(expressions)s)"
    output_field = FloatField()


class Percentile(Aggregate):
    """percentile_cont(fraction) WITHIN GROUP (ORDER BY expression) (PostgreSQL)."""

    function = "percentile_cont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression: Any, fraction: float, **extra: Any) -> None:
        super().__init__(expression, fraction=float(fraction), **extra)


def window() -> dt.timedelta:
    return dt.timedelta(hours=float(settings.CHANGE_FAILURE_WINDOW_HOURS))


def _after(name: str, delta: dt.timedelta) -> ExpressionWrapper:
    return ExpressionWrapper(OuterRef(name) + delta, output_field=DateTimeField())


def annotated(rows: QuerySet[Deployment]) -> QuerySet[Deployment]:
    """Each deployment with what DORA asks of it: a gate rollback of its release and an
    emergency rollback it was the latest success before (both within the window of its
    success), when it failed, and the next success of its service after that."""
    span = window()
    gate_rollback = ReleaseEvent.objects.filter(
        release_id=OuterRef("release_id"),
        kind=ReleaseEventKind.ROLLED_BACK,
        automatic=True,
        at__gte=OuterRef("succeeded_at"),
        at__lte=_after("succeeded_at", span),
    )
    later_success = Deployment.objects.filter(
        environment_id=OuterRef(OuterRef("environment_id")),
        succeeded_at__gt=OuterRef(OuterRef("succeeded_at")),
        succeeded_at__lt=OuterRef("created_at"),
    )
    emergency = Rollback.objects.filter(
        environment_id=OuterRef("environment_id"),
        created_at__gt=OuterRef("succeeded_at"),
        created_at__lte=_after("succeeded_at", span),
    ).filter(~Exists(later_success))
    next_success = Deployment.objects.filter(
        environment_id=OuterRef("environment_id"),
        service=OuterRef("service"),
        succeeded_at__gt=OuterRef("failure_at"),
    ).order_by("succeeded_at")
    return rows.annotate(
        gate_rollback=Exists(gate_rollback),
        emergency_rollback=Exists(emergency),
        failure_at=Case(
            When(status__in=FAILED_OUTCOMES, succeeded_at__isnull=True, then=F("finished_at")),
            When(status__in=FAILED_OUTCOMES, then=F("rolled_back_at")),
            default=None,
            output_field=DateTimeField(),
        ),
    ).annotate(next_success=Subquery(next_success.values("succeeded_at")[:1]))


@dataclass(frozen=True)
class Period:
    start: dt.datetime
    end: dt.datetime

    def of(self, name: str) -> Q:
        return Q(**{f"{name}__gte": self.start, f"{name}__lte": self.end})

    @property
    def days(self) -> float:
        return (self.end - self.start).total_seconds() / 86400

    def days_of_week(self, monday: dt.datetime) -> float:
        start, end = max(self.start, monday), min(self.end, monday + dt.timedelta(days=7))
        return max(0.0, (end - start).total_seconds() / 86400)


# What each figure counts, as conditions on the annotated rows.
def _conditions(period: Period) -> dict[str, Q]:
    success = period.of("succeeded_at")
    change = period.of("finished_at")
    failed = Q(status__in=FAILED_OUTCOMES)
    failure = failed & period.of("failure_at")
    return {
        "success": success,
        "lead": success & Q(commit_time__isnull=False),
        "change": change,
        "change_failed": change & failed,
        "change_gate": change & Q(gate_rollback=True),
        "change_emergency": change & Q(emergency_rollback=True),
        "change_failure": change & (failed | Q(gate_rollback=True) | Q(emergency_rollback=True)),
        "failure": failure,
        "recovered": failure & Q(next_success__isnull=False),
    }


LEAD = ("succeeded_at", "commit_time")
RECOVERY = ("next_success", "failure_at")


def _duration(end: str, start: str) -> Epoch:
    return Epoch(ExpressionWrapper(F(end) - F(start), output_field=DurationField()))


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


def _measures(condition: Q, fields: tuple[str, str], fractions: dict[str, float]) -> dict:
    """Percentile aggregates of a duration, where the database computes them (PostgreSQL)."""
    if connection.vendor != "postgresql":
        return {}
    return {
        name: Percentile(_duration(*fields), fraction, filter=condition)
        for name, fraction in fractions.items()
    }


def _read_percentiles(
    found: dict[str, Any],
    rows: QuerySet[Deployment],
    condition: Q,
    fields: tuple[str, str],
    fractions: dict[str, float],
    group: str | None = None,
) -> dict[Any, dict[str, float | None]]:
    """{group value (None without a group): {name: seconds}}: from the aggregate's answer
    on PostgreSQL; elsewhere from the two time columns of the rows the figure counts."""
    if connection.vendor == "postgresql":
        return {None: {name: found.get(name) for name in fractions}}
    durations: dict[Any, list[float]] = {}
    end, start = fields
    picked = [group, end, start] if group else [end, start]
    for row in rows.filter(condition).values_list(*picked):
        key = row[0] if group else None
        durations.setdefault(key, []).append((row[-2] - row[-1]).total_seconds())
    return {
        key: {name: _percentile(values, f) for name, f in fractions.items()}
        for key, values in durations.items()
    }


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
    trends: four aggregate queries on PostgreSQL, whatever the number of deployments."""
    end = now or timezone.now()
    period = Period(end - dt.timedelta(days=days), end)
    when = _conditions(period)
    touched = period.of("succeeded_at") | period.of("finished_at") | period.of("rolled_back_at")
    rows = annotated(dora_rows(environment, service).filter(touched))
    lead_fractions, recovery_fractions = {"lead_p50": 0.5, "lead_p90": 0.9}, {"recovery_p50": 0.5}
    found = rows.aggregate(
        **_measures(when["lead"], LEAD, lead_fractions),
        **_measures(when["recovered"], RECOVERY, recovery_fractions),
        successes=Count("pk", filter=when["success"]),
        lead_time_samples=Count("pk", filter=when["lead"]),
        changes=Count("pk", filter=when["change"]),
        change_failures=Count("pk", filter=when["change_failure"]),
        failed_or_rolled_back=Count("pk", filter=when["change_failed"]),
        gate_rollbacks=Count("pk", filter=when["change_gate"]),
        emergency_rollbacks=Count("pk", filter=when["change_emergency"]),
        failures=Count("pk", filter=when["failure"]),
        recovered=Count("pk", filter=when["recovered"]),
    )
    lead = _read_percentiles(found, rows, when["lead"], LEAD, lead_fractions).get(None, {})
    recovery = _read_percentiles(found, rows, when["recovered"], RECOVERY, recovery_fractions).get(
        None, {}
    )
    counts = {name: value for name, value in found.items() if isinstance(value, int)}
    counts["unrecovered"] = counts["failures"] - counts["recovered"]
    return DoraFigures(
        environment=environment.slug if environment else None,
        service=service,
        days=days,
        start=period.start,
        end=period.end,
        change_failure_window_hours=float(settings.CHANGE_FAILURE_WINDOW_HOURS),
        deployment_frequency_per_day=round(counts["successes"] / period.days, 4),
        lead_time_hours={"p50": _hours(lead.get("lead_p50")), "p90": _hours(lead.get("lead_p90"))},
        change_failure_rate=_rate(counts["change_failures"], counts["changes"]),
        recovery_time_hours={"p50": _hours(recovery.get("recovery_p50"))},
        counts=counts,
        weeks=_weeks(rows, period, when),
    )


def _monday(value: dt.datetime | dt.date) -> dt.datetime:
    if isinstance(value, dt.datetime):
        value = value.astimezone(dt.UTC).date()
    return dt.datetime.combine(value, dt.time(), tzinfo=dt.UTC)


def _weeks(rows: QuerySet[Deployment], period: Period, when: dict[str, Q]) -> list[DoraWeek]:
    """Per week (Monday, UTC) of the period: each figure grouped by the week of the moment
    it counts at (success, outcome, failure)."""
    utc = dt.UTC
    weeks: dict[dt.datetime, DoraWeek] = {}

    def week(key: Any) -> DoraWeek:
        monday = _monday(key)
        return weeks.setdefault(monday, DoraWeek(week=monday.date().isoformat()))

    p50 = {"p50": 0.5}
    grouped = [
        ("succeeded_at", "success", "lead", LEAD),
        ("finished_at", "change", None, None),
        ("failure_at", "failure", "recovered", RECOVERY),
    ]
    for moment, counted, timed, fields in grouped:
        by_week = rows.annotate(w=TruncWeek(moment, tzinfo=utc)).filter(when[counted])
        measures = _measures(when[timed], fields, p50) if timed else {}
        for row in by_week.values("w").annotate(
            n=Count("pk"), failed=Count("pk", filter=when["change_failure"]), **measures
        ):
            found = week(row["w"])
            if counted == "success":
                found.successes = row["n"]
                found.lead_time_hours_p50 = _hours(row.get("p50"))
            elif counted == "change":
                found.changes, found.change_failures = row["n"], row["failed"]
            else:
                found.recovery_time_hours_p50 = _hours(row.get("p50"))
        if timed and connection.vendor != "postgresql":
            for key, value in _read_percentiles({}, by_week, when[timed], fields, p50, "w").items():
                hours = _hours(value["p50"])
                if counted == "success":
                    week(key).lead_time_hours_p50 = hours
                else:
                    week(key).recovery_time_hours_p50 = hours
    for monday, found in weeks.items():
        days = period.days_of_week(monday)
        found.deployment_frequency_per_day = round(found.successes / days, 4) if days else 0.0
        found.change_failure_rate = _rate(found.change_failures, found.changes)
    return [weeks[k] for k in sorted(weeks)]
