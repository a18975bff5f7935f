"""Reads behind the release pages, with their joins done: a fixed number of queries whatever
a release holds (stages, gates, samples, evaluations, timeline).

Who sees a release: whoever holds a role on its environment (view_environment), or a
superuser. Samples over long periods are averaged into time buckets in the database, so a
chart never carries more than about CHART_POINTS points per series.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import (
    Avg,
    Count,
    F,
    Func,
    IntegerField,
    OuterRef,
    QuerySet,
    Subquery,
    Value,
)
from django.http import Http404
from guardian.shortcuts import get_objects_for_user

from flags.models import FlagState
from releasecontrol import roles
from releasecontrol.models import Environment, User
from releasecontrol.policy import APP_LABEL

from .models import LIVE_STATUSES, GateEvaluation, MetricSample, Release, ReleaseEvent
from .selectors import releases_with_details

CHART_POINTS = 480


def viewable_environment_ids(user: User) -> set[int]:
    """The environments whose releases this person may read (one query)."""
    if not user.is_authenticated or not user.is_active:
        return set()
    if user.is_superuser and user.is_human:
        return set(Environment.objects.values_list("pk", flat=True))
    return set(
        get_objects_for_user(
            user, f"{APP_LABEL}.{roles.VIEW}", Environment, accept_global_perms=False
        ).values_list("pk", flat=True)
    )


def release_list_for_user(
    user: User,
    *,
    environment_ids: Collection[int],
    environment: str | None = None,
    status: str | None = None,
) -> QuerySet[Release]:
    """Releases in the environments this person may read, newest first, filtered."""
    releases = releases_with_details().filter(environment_id__in=environment_ids)
    if environment:
        releases = releases.filter(environment__slug=environment)
    if status:
        releases = releases.filter(status=status)
    return releases.order_by("-created_at", "-pk")


def release_get_for_user(
    user: User, pk: int, *, environment_ids: Collection[int] | None = None
) -> Release:
    """The release with its plan, gates and flags; 404 when there is none, 403 when this
    person holds no role on its environment (`environment_ids`: those they may read, when
    the caller has them already)."""
    release = releases_with_details().filter(pk=pk).first()
    if release is None:
        raise Http404(f"No release {pk}")
    if environment_ids is None:
        environment_ids = viewable_environment_ids(user)
    if release.environment_id not in environment_ids:
        raise PermissionDenied(
            f"Refused: you hold no role in {release.environment.slug}, where this release runs."
        )
    return release


def release_events(release: Release) -> list[ReleaseEvent]:
    return list(
        ReleaseEvent.objects.filter(release=release).select_related("actor").order_by("at", "pk")
    )


def release_fingerprint(pk: int) -> tuple[int, str] | None:
    """(environment id, a fingerprint that changes whenever anything the live part of the
    page shows changes: the release row, a new evaluation, a new timeline event), in one
    query; None when there is no such release."""
    row = (
        Release.objects.filter(pk=pk)
        .annotate(
            evaluation=Subquery(
                GateEvaluation.objects.filter(release=OuterRef("pk"))
                .order_by("-pk")
                .values("pk")[:1]
            ),
            event=Subquery(
                ReleaseEvent.objects.filter(release=OuterRef("pk")).order_by("-pk").values("pk")[:1]
            ),
        )
        .values(
            "environment_id",
            "evaluation",
            "event",
            "status",
            "current_stage_index",
            "updated_at",
            "pending_request_id",
        )
        .first()
    )
    if row is None:
        return None
    parts = repr(tuple(sorted(row.items()))).encode()
    return row["environment_id"], hashlib.sha256(parts).hexdigest()[:16]


def evaluations_between(
    release: Release, start: dt.datetime, end: dt.datetime
) -> list[GateEvaluation]:
    """The release's kept evaluations in (start, end], oldest first, for the charts."""
    return list(
        GateEvaluation.objects.filter(
            release=release, evaluated_at__gt=start, evaluated_at__lte=end
        ).order_by("evaluated_at", "pk")
    )


def evaluations_page_query(release: Release) -> QuerySet[GateEvaluation]:
    """The evaluations table, latest first."""
    return (
        GateEvaluation.objects.filter(release=release)
        .select_related("gate")
        .order_by("-evaluated_at", "-pk")
    )


class TimeBucket(Func):
    """Which `stride`-second bucket after `origin` the time `source` falls in (0, 1, ...), on
    PostgreSQL and on SQLite (the embedded default), which has no date_bin."""

    output_field = IntegerField()

    def __init__(self, source: Any, *, origin: dt.datetime, stride: int) -> None:
        super().__init__(source, Value(origin), Value(stride))

    def _parts(self, compiler: Any, connection: Any) -> tuple[list[str], list[Any]]:
        sqls, params = [], []
        for expression in self.source_expressions:
            sql, expression_params = compiler.compile(expression)
            sqls.append(sql)
            params.extend(expression_params)
        return sqls, params

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list]:
        (source, origin, stride), params = self._parts(compiler, connection)
        return (
            f"CAST(floor(extract(epoch FROM ({source} - {origin})) / {stride}) AS integer)",
            params,
        )

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list]:
        (source, origin, stride), params = self._parts(compiler, connection)
        return (
            f"CAST((julianday({source}) - julianday({origin})) * 86400.0 / {stride} AS integer)",
            params,
        )


@dataclass(frozen=True)
class SamplePoint:
    metric: str
    cohort: str
    at: dt.datetime
    value: float
    count: int


def bucket_seconds(start: dt.datetime, end: dt.datetime) -> int:
    """The bucket width that keeps a series under CHART_POINTS points (at least 10 s)."""
    span = max((end - start).total_seconds(), 1)
    return max(10, int(span // CHART_POINTS) + 1)


def sample_series(
    release: Release, metrics: Collection[str], start: dt.datetime, end: dt.datetime
) -> list[SamplePoint]:
    """Samples of these metrics in (start, end], averaged per time bucket, per cohort; one
    query."""
    if not metrics:
        return []
    stride = bucket_seconds(start, end)
    rows = (
        MetricSample.objects.filter(
            release=release, metric__in=list(metrics), time__gt=start, time__lte=end
        )
        .annotate(bucket=TimeBucket(F("time"), origin=start, stride=stride))
        .values("metric", "cohort", "bucket")
        .annotate(value=Avg("value"), count=Count("pk"))
        .order_by("metric", "cohort", "bucket")
    )
    return [
        SamplePoint(
            r["metric"],
            r["cohort"],
            start + dt.timedelta(seconds=r["bucket"] * stride),
            r["value"],
            r["count"],
        )
        for r in rows
    ]


def flag_states_of(release: Release) -> dict[int, FlagState]:
    """flag id -> its state in the release's environment (missing: never set, so off)."""
    flag_ids = [rf.flag_id for rf in release.release_flags.all()]
    states = FlagState.objects.filter(environment=release.environment_id, flag_id__in=flag_ids)
    return {state.flag_id: state for state in states}


def live_releases_by_environment(
    environment_ids: Collection[int],
) -> dict[int, list[Release]]:
    """For the dashboard: live releases per environment, with their plan (a fixed number of
    queries)."""
    by_environment: dict[int, list[Release]] = {pk: [] for pk in environment_ids}
    live = releases_with_details().filter(
        status__in=LIVE_STATUSES, environment_id__in=list(environment_ids)
    )
    for release in live.order_by("-created_at", "-pk"):
        by_environment.setdefault(release.environment_id, []).append(release)
    return by_environment
