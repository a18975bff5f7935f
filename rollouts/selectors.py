"""Reads of releases for the API and the pages: every list in a fixed number of queries."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from django.db.models import Prefetch, QuerySet
from django.http import Http404

from releasecontrol.models import Environment

from .models import Gate, GateEvaluation, MetricSample, Release, ReleaseFlag, Stage


def releases_with_details() -> QuerySet[Release]:
    return Release.objects.select_related("environment", "requested_by").prefetch_related(
        Prefetch("release_flags", queryset=ReleaseFlag.objects.select_related("flag")),
        Prefetch("stages", queryset=Stage.objects.order_by("index")),
        Prefetch("gates", queryset=Gate.objects.select_related("stage").order_by("pk")),
    )


def release_list(
    *,
    environment: Environment | None = None,
    status: str = "",
    before_id: int | None = None,
) -> QuerySet[Release]:
    """Newest first (by id, for keyset paging)."""
    releases = releases_with_details().order_by("-pk")
    if environment is not None:
        releases = releases.filter(environment=environment)
    if status:
        releases = releases.filter(status=status)
    if before_id is not None:
        releases = releases.filter(pk__lt=before_id)
    return releases


def release_get(pk: int) -> Release:
    release = releases_with_details().filter(pk=pk).first()
    if release is None:
        raise Http404(f"No release {pk}")
    return release


def latest_evaluations(releases: Sequence[Release]) -> dict[int, GateEvaluation]:
    """The latest kept evaluation of every gate of these releases, in one query."""
    gate_ids = [g.pk for r in releases for g in r.gates.all()]
    if not gate_ids:
        return {}
    rows = (
        GateEvaluation.objects.filter(gate_id__in=gate_ids)
        .order_by("gate_id", "-evaluated_at", "-pk")
        .distinct("gate_id")
    )
    return {e.gate_id: e for e in rows}


def release_evaluations(
    release: Release, *, before_id: int | None = None, limit: int = 50
) -> list[GateEvaluation]:
    rows = GateEvaluation.objects.filter(release=release).select_related("gate").order_by("-pk")
    if before_id is not None:
        rows = rows.filter(pk__lt=before_id)
    return list(rows[:limit])


def release_samples(
    release: Release,
    *,
    metric: str = "",
    since: dt.datetime | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> list[MetricSample]:
    rows = MetricSample.objects.filter(release=release).select_related("submitted_by")
    if metric:
        rows = rows.filter(metric=metric)
    if since is not None:
        rows = rows.filter(time__gte=since)
    if before_id is not None:
        rows = rows.filter(pk__lt=before_id)
    return list(rows.order_by("-pk")[:limit])
