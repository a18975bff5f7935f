"""What the release services share: locking, the views recorded in audit events, the
timeline, and driving a stage's state onto the release's flags through flag_state_set."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from flags.guards import BlackoutOpen
from flags.models import Mode
from flags.services import KillSwitchEngaged, flag_state_set
from releasecontrol.audit import Target
from releasecontrol.errors import Conflict
from releasecontrol.models import User

from .models import (
    LIVE_STATUSES,
    Release,
    ReleaseEvent,
    ReleaseEventKind,
    ReleaseFlag,
    ReleaseStatus,
    Stage,
)


class ReleaseStateConflict(Conflict):
    """The release's status does not allow this step (answered 409)."""

    code = "release_state"


class ReleaseFlagTaken(Conflict):
    """Another live release already drives one of the flags in this environment."""

    code = "flag_driven_by_another_release"


@dataclass(frozen=True)
class Step:
    """One state for every flag of the release."""

    mode: str
    percentage: int
    allowlist: tuple[str, ...]


def origin_of(release: Release) -> str:
    """What release-driven flag changes say drove them (flags.hooks listeners read it)."""
    return f"release:{release.pk}"


def release_lock(release: Release | int) -> Release:
    pk = release.pk if isinstance(release, Release) else release
    return (
        Release.objects.select_for_update(of=("self",))
        .select_related("environment", "approved_by", "started_by")
        .get(pk=pk)
    )


def release_target(release: Release) -> Target:
    return Target("release", str(release.pk), str(release))


def stage_of(release: Release, index: int | None) -> Stage | None:
    if index is None:
        return None
    return release.stages.filter(index=index).first()


def step_of(release: Release, stage: Stage) -> Step:
    keeps_list = stage.mode in (Mode.ALLOWLIST, Mode.PERCENTAGE)
    return Step(stage.mode, stage.percentage, tuple(release.allowlist) if keeps_list else ())


def release_view(release: Release) -> dict[str, Any]:
    """What an audit event records of a release's position."""
    stage = stage_of(release, release.current_stage_index)
    return {
        "id": release.pk,
        "name": release.name,
        "status": release.status,
        "stage_index": release.current_stage_index,
        "stage": stage.name if stage else None,
        "percentage": stage.percentage if stage else None,
        "revision": release.revision,
        "paused_reason": release.paused_reason,
    }


def event_add(
    release: Release,
    kind: str,
    *,
    actor: User,
    reason: str = "",
    evidence: Any = None,
    automatic: bool | None = None,
    at: dt.datetime | None = None,
    stage: Stage | None = None,
) -> ReleaseEvent:
    stage = stage if stage is not None else stage_of(release, release.current_stage_index)
    return ReleaseEvent.objects.create(
        release=release,
        at=at or timezone.now(),
        kind=kind,
        stage_index=stage.index if stage else None,
        mode=stage.mode if stage else "",
        percentage=stage.percentage if stage else None,
        actor=actor,
        automatic=actor.is_system if automatic is None else automatic,
        reason=reason,
        evidence=evidence,
    )


def plan_approver(release: Release, actor: User) -> User | None:
    """Whose plan a flag change follows: in production the approver of the start (or the
    latest resume), read from its verified approval; elsewhere, for automation, who started
    it. A person outside production acts on their own rights."""
    if release.environment.is_production:
        return release.approved_by
    return release.started_by if actor.is_system else None


def flags_drive(release: Release, step: Step, *, actor: User, reason: str) -> list[dict]:
    """Set every flag of the release to `step` in its environment (policy, kill switches,
    blackout windows and audit as any flag change). Returns what changed."""
    approver = plan_approver(release, actor)
    changed = []
    for link in release.release_flags.select_related("flag").order_by("flag__key"):
        state = flag_state_set(
            actor=actor,
            flag=link.flag,
            environment=release.environment,
            mode=step.mode,
            percentage=step.percentage,
            allowlist=list(step.allowlist),
            reason=reason or f"release {release.name}",
            origin=origin_of(release),
            plan_approved_by=approver,
        )
        changed.append({"flag": link.flag.key, "mode": state.mode, "version": state.version})
    return changed


def flags_drive_or_pause(
    release: Release, step: Step, *, actor: User, reason: str
) -> tuple[list[dict], str | None]:
    """As flags_drive; for automation, a kill switch or blackout window that refuses the
    increase undoes the whole step and answers why (the caller pauses the release)."""
    if not actor.is_system:
        return flags_drive(release, step, actor=actor, reason=reason), None
    try:
        with transaction.atomic():
            return flags_drive(release, step, actor=actor, reason=reason), None
    except (KillSwitchEngaged, BlackoutOpen) as refusal:
        return [], str(refusal)


def flags_live_set(release: Release, live: bool) -> None:
    """Mark the release's flags live (or not); the database keeps one live release per flag
    and environment, and a second is answered 409 naming the first."""
    if live:
        links = list(release.release_flags.select_related("flag"))
        taken = (
            ReleaseFlag.objects.filter(
                live=True,
                environment=release.environment,
                flag__in=[link.flag_id for link in links],
            )
            .exclude(release=release)
            .select_related("release", "flag")
            .first()
        )
        if taken is not None:
            raise ReleaseFlagTaken(
                f"{taken.flag.key} in {release.environment.slug} is driven by release "
                f"#{taken.release_id} {taken.release} ({taken.release.status}): end or roll "
                "back that release first.",
                release=taken.release_id,
            )
    try:
        with transaction.atomic():
            ReleaseFlag.objects.filter(release=release).update(live=live)
    except IntegrityError:  # a concurrent start took a flag between the check and here
        raise ReleaseFlagTaken(
            f"A flag of {release} in {release.environment.slug} was just taken by another "
            "live release: read the releases there and try again."
        ) from None


def status_set(release: Release, status: str, *, now: dt.datetime | None = None) -> None:
    now = now or timezone.now()
    release.status = status
    release.updated_at = now
    if status in (ReleaseStatus.COMPLETED, ReleaseStatus.ROLLED_BACK):
        release.ended_at = now
        release.pending_request_id = None


def releases_mark_rolled_back(
    releases: Sequence[Release],
    *,
    actor: User,
    reason: str,
    now: dt.datetime | None = None,
    evidence: Any = None,
    automatic: bool | None = None,
) -> list[dict[str, Any]]:
    """Mark live releases (locked by the caller) rolled back, set-wise: rolled back, their
    flags no longer driven, a timeline event each. No authorization, no flag writes and no
    audit event: the caller has done or does those (a release rollback turned its flags off
    through flag_state_set; the environment rollback's kill switch turned them all off).
    Three statements whatever their number. Releases that are no longer live are left as
    they are and not answered. Answers each stopped one as the rollback snapshot keeps it
    (status, stage and percentage before)."""
    releases = [r for r in releases if r.status in LIVE_STATUSES]
    if not releases:
        return []
    now = now or timezone.now()
    automatic = actor.is_system if automatic is None else automatic
    ids = [r.pk for r in releases]
    stages = {
        (s.release_id, s.index): s
        for s in Stage.objects.filter(release_id__in=ids).only(
            "release_id", "index", "name", "mode", "percentage"
        )
    }
    stopped, events = [], []
    for release in releases:
        stage = stages.get((release.pk, release.current_stage_index))
        stopped.append(
            {
                "id": release.pk,
                "name": release.name,
                "version": release.version,
                "status": release.status,
                "stage_index": release.current_stage_index,
                "stage": stage.name if stage else None,
                "mode": stage.mode if stage else None,
                "percentage": stage.percentage if stage else None,
            }
        )
        events.append(
            ReleaseEvent(
                release=release,
                at=now,
                kind=ReleaseEventKind.ROLLED_BACK,
                stage_index=stage.index if stage else None,
                mode=stage.mode if stage else "",
                percentage=stage.percentage if stage else None,
                actor=actor,
                automatic=automatic,
                reason=reason,
                evidence=evidence,
            )
        )
    Release.objects.filter(pk__in=ids).update(
        status=ReleaseStatus.ROLLED_BACK, ended_at=now, updated_at=now, pending_request_id=None
    )
    ReleaseFlag.objects.filter(release_id__in=ids, live=True).update(live=False)
    ReleaseEvent.objects.bulk_create(events)
    for release in releases:  # the caller's instances say what the rows now say
        status_set(release, ReleaseStatus.ROLLED_BACK, now=now)
    return stopped
