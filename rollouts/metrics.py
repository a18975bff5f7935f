"""Metric samples in: validated as a batch (one bad sample keeps none), authorized per
environment (submit_metrics), stored with their submitter in one bulk insert.

Each sample: `environment` (slug), `release` (id) or `flag` (a key: the one live release
driving it there), `metric`, `value`, optional `time` (default now; refused outside
[now - METRIC_RETENTION_DAYS, now + 60 s]), `cohort` (canary or control; default canary)
and `total` (trials, for binomial and Poisson baselines).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from releasecontrol.audit import Target, audit_record
from releasecontrol.models import Environment, User
from releasecontrol.policy import authorize

from . import actions
from .models import Cohort, MetricSample, Release, ReleaseFlag
from .plans import METRIC_HELP, METRIC_PATTERN

MAX_BATCH = 5000
FUTURE_SLACK = dt.timedelta(seconds=60)
SAMPLE_FIELDS = ("environment", "release", "flag", "metric", "value", "time", "cohort", "total")
MAX_VALUE = 1e15


def retention() -> dt.timedelta:
    return dt.timedelta(days=getattr(settings, "METRIC_RETENTION_DAYS", 30))


def _finite(value: Any) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, int | float)
        and math.isfinite(value)
        and abs(value) <= MAX_VALUE
    )


def _sample_errors(
    raw: Any,
    now: dt.datetime,
    environments: dict[str, Environment],
    releases: dict[int, int],
    driven: dict[tuple[str, str], int],
) -> tuple[list[str], dict[str, Any] | None]:
    if not isinstance(raw, Mapping):
        return ["a sample is an object"], None
    errors = [f"{name}: unknown field" for name in raw if name not in SAMPLE_FIELDS]
    slug = raw.get("environment")
    environment = environments.get(slug) if isinstance(slug, str) else None
    if environment is None:
        errors.append("environment: no such environment")
    metric = raw.get("metric")
    if not isinstance(metric, str) or not METRIC_PATTERN.match(metric):
        errors.append(f"metric: {METRIC_HELP}")
    value = raw.get("value")
    if not _finite(value):
        errors.append(f"value: a finite number, |x| <= {MAX_VALUE:g}")
    total = raw.get("total")
    if total is not None and (not _finite(total) or total < 0):
        errors.append("total: a finite number of trials, 0 or more")
    cohort = raw.get("cohort", Cohort.CANARY)
    if cohort not in Cohort.values:
        errors.append(f"cohort: one of {', '.join(Cohort.values)}")
    time = raw.get("time", now)
    if not isinstance(time, dt.datetime) or timezone.is_naive(time):
        errors.append("time: a time with its zone (ISO 8601)")
    elif not now - retention() <= time <= now + FUTURE_SLACK:
        errors.append(
            f"time: within the last {retention().days} days and at most 60 s ahead of now"
        )
    release = None
    pk, key = raw.get("release"), raw.get("flag")
    if (pk is None) == (key is None):
        errors.append("release: name the release (its id) or the flag it drives (its key)")
    elif pk is not None:
        found = releases.get(pk) if isinstance(pk, int) and not isinstance(pk, bool) else None
        if found is None:
            errors.append("release: no such release")
        elif environment is not None and found != environment.pk:
            errors.append(f"release: release {pk} is not in {environment.slug}")
        else:
            release = pk
    elif environment is not None:
        found = driven.get((key, environment.slug)) if isinstance(key, str) else None
        if found is None:
            errors.append(f"flag: no live release drives {str(key)[:100]!r} in {environment.slug}")
        else:
            release = found
    if errors:
        return errors, None
    return [], {
        "environment": environment,
        "release": release,
        "metric": metric,
        "value": float(value),
        "total": float(total) if total is not None else None,
        "cohort": cohort,
        "time": time,
    }


def _lookups(
    samples: Sequence[Any],
) -> tuple[dict[str, Environment], dict[int, int], dict[tuple[str, str], int]]:
    """Everything the batch names, in three queries whatever its size. Releases as their
    environment's id only (a batch names hundreds: model instances cost more than the rest)."""
    maps = [s for s in samples if isinstance(s, Mapping)]
    environments = {e.slug: e for e in Environment.objects.all()}
    keys = {s.get("flag") for s in maps if isinstance(s.get("flag"), str)}
    driven = {
        (key, slug): pk
        for key, slug, pk in ReleaseFlag.objects.filter(live=True, flag__key__in=keys).values_list(
            "flag__key", "environment__slug", "release_id"
        )
    }
    ids = {s.get("release") for s in maps if isinstance(s.get("release"), int)}
    ids |= set(driven.values())
    releases = dict(Release.objects.filter(pk__in=ids).values_list("pk", "environment_id"))
    return environments, releases, driven


@transaction.atomic
def metric_samples_submit(
    *,
    actor: User,
    samples: list[dict],
    idempotency_key: str | None = None,
    now: dt.datetime | None = None,
) -> int:
    """Keep every sample of the batch, or none: errors name each bad sample by index
    (`samples[3]: value: ...`). Returns how many were kept."""
    now = now or timezone.now()
    if not isinstance(samples, list) or not samples:
        raise ValidationError({"samples": "a list of 1 or more samples"})
    if len(samples) > MAX_BATCH:
        raise ValidationError({"samples": f"at most {MAX_BATCH} samples per batch"})
    environments, releases, driven = _lookups(samples)
    errors: dict[str, list[str]] = {}
    clean = []
    for index, raw in enumerate(samples):
        problems, sample = _sample_errors(raw, now, environments, releases, driven)
        if problems:
            errors[f"samples[{index}]"] = problems
        else:
            clean.append(sample)
    if errors:
        raise ValidationError(errors)
    counts: dict[Environment, int] = {}
    for sample in clean:
        counts[sample["environment"]] = counts.get(sample["environment"], 0) + 1
    for environment in sorted(counts, key=lambda e: e.position):
        authorize(
            actor,
            actions.METRICS_SUBMIT,
            environment,
            target=Target("metrics", "", environment.slug),
            requested={"samples": counts[environment]},
        )
    _samples_write(clean, actor=actor, now=now)
    for environment, count in counts.items():
        per_release: dict[int, int] = {}
        for s in clean:
            if s["environment"] == environment:
                per_release[s["release"]] = per_release.get(s["release"], 0) + 1
        audit_record(
            actor=actor,
            action=actions.METRICS_SUBMIT.name,
            environment=environment,
            target=Target("metrics", "", environment.slug),
            after={
                "samples": count,
                "releases": {str(k): v for k, v in sorted(per_release.items())},
                "idempotency_key": idempotency_key,
            },
        )
    return len(clean)


COPIED_COLUMNS = (
    "environment_id",
    "release_id",
    "metric",
    "value",
    "total",
    "cohort",
    "time",
    "submitted_by_id",
    "received_at",
)


def _samples_write(clean: list[dict[str, Any]], *, actor: User, now: dt.datetime) -> None:
    """The validated rows, in the caller's transaction: PostgreSQL's COPY (no model
    instances, no SQL built per row), bulk_create elsewhere (SQLite)."""
    rows = [
        (
            s["environment"].pk,
            s["release"],
            s["metric"],
            s["value"],
            s["total"],
            s["cohort"],
            s["time"],
            actor.pk,
            now,
        )
        for s in clean
    ]
    if connection.vendor == "postgresql":
        table = connection.ops.quote_name(MetricSample._meta.db_table)
        columns = ", ".join(connection.ops.quote_name(c) for c in COPIED_COLUMNS)
        with (
            connection.cursor() as cursor,
            cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        return
    MetricSample.objects.bulk_create(
        [MetricSample(**dict(zip(COPIED_COLUMNS, row, strict=True))) for row in rows],
        batch_size=1000,
    )
