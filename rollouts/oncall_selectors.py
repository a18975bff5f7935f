"""Reads for the on-call page, the snapshot pages and the dashboard's on-call line: what is
live in an environment now, and so what the big button would turn off and stop. A fixed
number of queries whatever the environment holds."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Prefetch, QuerySet
from django.http import Http404

from flags.models import Flag, FlagState, KillSwitch, Mode, Tag
from flags.selectors import LIVE_MODES, engaged_kill_switches
from releasecontrol.models import Environment
from releasecontrol.selectors import MonitorState, monitor_state

from .models import (
    Deployment,
    Gate,
    Outcome,
    Release,
    ReleaseEvent,
    Rollback,
    Stage,
)

# How many of the flags that are on the page lists one by one (the counts cover them all).
FLAGS_LISTED = 200
RECENT = 10


@dataclass(frozen=True)
class LiveRelease:
    release: Release
    stage: Stage | None
    stage_count: int
    gates: list[Gate]

    @property
    def health(self) -> str:
        """The worst latest outcome among its acting gates: what on-call reads first."""
        outcomes = {g.last_outcome for g in self.gates if g.acts and g.last_outcome}
        for outcome in (Outcome.FAILURE, Outcome.ERROR, Outcome.NO_DATA, Outcome.INCONCLUSIVE):
            if outcome in outcomes:
                return outcome
        return Outcome.SUCCESS if outcomes else "not evaluated"


@dataclass(frozen=True)
class OncallOverview:
    environment: Environment
    counts: list[tuple[str, int]]  # mode -> how many flags are in it (live modes)
    flags_on: list[FlagState]  # the first FLAGS_LISTED, by key
    flags_on_total: int
    releases: list[LiveRelease]
    automatic: list[ReleaseEvent]
    deployments: list[Deployment]
    switches: list[KillSwitch]
    rollbacks: list[Rollback]
    monitor: MonitorState
    tags: list[Tag]

    @property
    def environment_rollback(self) -> Rollback | None:
        """The unrestored rollback holding the environment kill switch, if any."""
        for rollback in self.rollbacks:
            switch = rollback.kill_switch
            if switch is not None and switch.released_at is None and not rollback.restored_at:
                return rollback
        return None


def oncall_environment_get(slug: str) -> Environment:
    try:
        return Environment.objects.select_related("kill_switch_engaged_by").get(slug=slug)
    except Environment.DoesNotExist:
        raise Http404(f"No environment {slug!r}") from None


def live_releases(environment: Environment) -> QuerySet[Release]:
    return (
        Release.objects.live()
        .filter(environment=environment)
        .select_related("requested_by")
        .prefetch_related(
            Prefetch("stages", queryset=Stage.objects.order_by("index")),
            Prefetch("gates", queryset=Gate.objects.order_by("pk")),
        )
        .order_by("pk")
    )


def oncall_overview(environment: Environment) -> OncallOverview:
    on = (
        FlagState.objects.filter(environment=environment, flag__archived=False)
        .exclude(mode=Mode.OFF)
        .select_related("flag")
        .order_by("flag__key")
    )
    counts = dict(
        on.order_by().values_list("mode").annotate(n=Count("pk")).values_list("mode", "n")
    )
    releases = []
    for release in live_releases(environment):
        stages = list(release.stages.all())
        index = release.current_stage_index
        stage = stages[index] if index is not None and index < len(stages) else None
        releases.append(LiveRelease(release, stage, len(stages), list(release.gates.all())))
    automatic = list(
        ReleaseEvent.objects.filter(release__environment=environment, automatic=True)
        .select_related("release", "actor")
        .order_by("-at", "-pk")[:RECENT]
    )
    deployments = list(
        Deployment.objects.filter(environment=environment)
        .select_related("requested_by")
        .order_by("-created_at", "-pk")[:RECENT]
    )
    return OncallOverview(
        environment=environment,
        counts=[(mode, counts.get(mode, 0)) for mode in LIVE_MODES],
        flags_on=list(on[:FLAGS_LISTED]),
        flags_on_total=sum(counts.values()),
        releases=releases,
        automatic=automatic,
        deployments=deployments,
        switches=list(engaged_kill_switches(environment)),
        rollbacks=list(rollbacks_of(environment)[:RECENT]),
        monitor=monitor_state(),
        tags=list(Tag.objects.order_by("name")),
    )


def rollbacks_of(environment: Environment) -> QuerySet[Rollback]:
    return (
        Rollback.objects.filter(environment=environment)
        .select_related("actor", "kill_switch", "restored_by")
        .order_by("-created_at", "-pk")
    )


def rollback_get(pk: int) -> Rollback:
    rollback = (
        Rollback.objects.select_related("environment", "actor", "kill_switch", "restored_by")
        .filter(pk=pk)
        .first()
    )
    if rollback is None:
        raise Http404(f"No rollback {pk}")
    return rollback


def flag_for_switch(key: str) -> Flag | None:
    return Flag.objects.filter(key=key).first()


def oncall_dashboard_summary(environments: Sequence[Environment]) -> dict[int, Any]:
    """Per environment: live releases and the unrestored rollback (two queries)."""
    live = dict(
        Release.objects.live()
        .filter(environment__in=environments)
        .order_by()
        .values_list("environment_id")
        .annotate(n=Count("pk"))
        .values_list("environment_id", "n")
    )
    holding = {
        r.environment_id: r
        for r in Rollback.objects.filter(
            environment__in=environments,
            restored_at__isnull=True,
            kill_switch__released_at__isnull=True,
        ).order_by("created_at")
    }
    return {
        env.pk: {"live_releases": live.get(env.pk, 0), "rollback": holding.get(env.pk)}
        for env in environments
    }
