"""Every write to a release: create and edit (rollouts/editing.py, importable from here),
start, advance, pause, resume, halve, review, roll back.

Each service authorizes through the policy, locks the release, changes it, drives its flags
through `flags.services.flag_state_set` (same policy, kill switches, blackout windows, audit
and versions as any flag change), appends a ReleaseEvent to the timeline and records its
audit event, in one transaction. Automatic actions pass `actor=User.system()` and the gate
results as `evidence`, which the audit event's `after` holds.

Where the environment requires approvals (`approvals_required` > 0), a start, a stage that
needs a go and a resume need an approved request (`release.start`, `release.advance`,
`release.resume`, rollouts/requestables.py): without one the answer is 409 naming the request
to make. In production automation increases exposure only along the plan a human approved:
the approver read from the verified start (or resume) approval; an edit voids it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction
from django.utils import timezone

from flags.models import FlagState, Mode
from flags.services import flag_state_set
from releasecontrol.audit import audit_record
from releasecontrol.models import User
from releasecontrol.policy import Action
from releasecontrol.requestable import VerifiedApproval

from . import actions
from .driving import (
    Step,
    event_add,
    flags_drive,
    flags_drive_or_pause,
    flags_live_set,
    origin_of,
    plan_approver,
    release_lock,
    release_target,
    release_view,
    releases_mark_rolled_back,
    stage_of,
    status_set,
    step_of,
)
from .editing import release_create, release_update
from .models import LIVE_STATUSES, Release, ReleaseEventKind, ReleaseStatus
from .step_guards import (
    needs_request,
    step_approval_required,
    step_approval_verified,
    step_authorize,
    step_refused,
)

__all__ = [
    "needs_request",
    "release_advance",
    "release_create",
    "release_halve",
    "release_hold_restart",
    "release_mark_rolled_back",
    "release_pause",
    "release_resume",
    "release_review",
    "release_rollback",
    "release_start",
    "release_update",
]


def _record(
    actor: User,
    action: Action,
    release: Release,
    before: dict,
    *,
    reason: str,
    evidence: Any = None,
    extra: dict | None = None,
) -> None:
    after: dict[str, Any] = {**release_view(release), **(extra or {})}
    if evidence is not None:
        after["evidence"] = evidence
    audit_record(
        actor=actor,
        action=action.name,
        environment=release.environment,
        target=release_target(release),
        before=before,
        after=after,
        reason=reason,
    )


def _enter(release: Release, index: int, now: dt.datetime) -> None:
    release.current_stage_index = index
    release.stage_entered_at = release.hold_started_at = now


def _paused(release: Release, reason: str, now: dt.datetime) -> None:
    status_set(release, ReleaseStatus.PAUSED, now=now)
    release.paused_reason = reason


# --- Start, advance -------------------------------------------------------------------------


@transaction.atomic
def release_start(
    *, actor: User, release: Release, reason: str, approval: VerifiedApproval | int | None = None
) -> Release:
    """Enter the first stage. A draft (or one awaiting its start approval) only."""
    release = release_lock(release)
    parameters = {"release": release.pk}
    verified = step_approval_verified(approval, release, actions.RELEASE_START.name, parameters)
    startable = release.status in (ReleaseStatus.DRAFT, ReleaseStatus.AWAITING_APPROVAL)
    step_authorize(
        actor,
        actions.RELEASE_START,
        release,
        reason,
        approved_by=verified.first_approver if verified else None,
        request_instead=parameters if startable and verified is None else None,
    )
    if not startable:
        raise step_refused(release, "a start", "draft or awaiting approval")
    if verified is None and needs_request(release):
        raise step_approval_required(actor, release, actions.RELEASE_START, parameters, reason)
    before = release_view(release)
    now = timezone.now()
    flags_live_set(release, True)
    if verified is not None:
        release.approval_request_id = verified.request_id
        release.approved_by = verified.first_approver
    release.started_by = actor if not actor.is_system else release.approved_by
    release.pending_request_id = None
    release.started_at, release.paused_reason = now, ""
    status_set(release, ReleaseStatus.IN_PROGRESS, now=now)
    _enter(release, 0, now)
    release.save()
    stage = stage_of(release, 0)
    changed = flags_drive(release, step_of(release, stage), actor=actor, reason=reason)
    event_add(release, ReleaseEventKind.STARTED, actor=actor, reason=reason, at=now)
    _record(
        actor,
        actions.RELEASE_START,
        release,
        before,
        reason=reason,
        extra={"flags": changed, **_approval_link(verified)},
    )
    return release


def _approval_link(verified: VerifiedApproval | None) -> dict[str, Any]:
    return {"approval": verified.audit_link()} if verified is not None else {}


def _go_request_open(release: Release, index: int, reason: str) -> int:
    """Automation asks people for the go a stage needs (a release.advance request)."""
    from approvals.services import approval_request_open

    stage = stage_of(release, index)
    request = approval_request_open(
        environment=release.environment,
        action=actions.RELEASE_ADVANCE.name,
        parameters={"release": release.pk, "stage": index},
        title=f"Go for {release.name} stage {index + 1} ({stage.name})",
        checklist="none" if _checklist_optional(release) else None,
        reason=reason or "The stage's conditions hold; it needs a go.",
    )
    return request.pk


def _checklist_optional(release: Release) -> bool:
    from approvals.checklists import approval_settings_for

    return approval_settings_for(release.environment).checklist_optional


@transaction.atomic
def release_advance(
    *,
    actor: User,
    release: Release,
    reason: str,
    approval: VerifiedApproval | int | None = None,
    evidence: Any = None,
) -> Release:
    """Enter the next stage (or complete after the last). A next stage that needs a go waits
    for an approved release.advance request: automation opens it (pending_request_id) and
    returns the release unchanged; a person without one is answered 409 naming it."""
    release = release_lock(release)
    index = (release.current_stage_index or 0) + 1
    parameters = {"release": release.pk, "stage": index}
    verified = step_approval_verified(approval, release, actions.RELEASE_ADVANCE.name, parameters)
    step_authorize(
        actor,
        actions.RELEASE_ADVANCE,
        release,
        reason,
        approved_by=verified.first_approver if verified else plan_approver(release, actor),
        requested=parameters,
        request_instead=(
            parameters if release.status == ReleaseStatus.IN_PROGRESS and verified is None else None
        ),
    )
    if release.status != ReleaseStatus.IN_PROGRESS:
        raise step_refused(release, "advancing", "in progress (resume a paused one first)")
    before = release_view(release)
    now = timezone.now()
    stage = stage_of(release, index)
    if stage is None:
        status_set(release, ReleaseStatus.COMPLETED, now=now)
        release.save()
        flags_live_set(release, False)
        event_add(release, ReleaseEventKind.COMPLETED, actor=actor, reason=reason, at=now)
        _record(actor, actions.RELEASE_ADVANCE, release, before, reason=reason, evidence=evidence)
        return release
    if stage.needs_go and verified is None and needs_request(release):
        if not actor.is_system:
            raise step_approval_required(
                actor, release, actions.RELEASE_ADVANCE, parameters, reason
            )
        if release.pending_request_id is None:
            release.pending_request_id = _go_request_open(release, index, reason)
            release.save(update_fields=["pending_request_id"])
            event_add(
                release,
                ReleaseEventKind.GO_REQUESTED,
                actor=actor,
                reason=f"request #{release.pending_request_id}",
                evidence=evidence,
                at=now,
            )
        return release
    if stage.needs_go and verified is None and actor.is_system:
        return release  # outside approval environments a person's advance is the go
    changed, refused = flags_drive_or_pause(
        release, step_of(release, stage), actor=actor, reason=reason
    )
    if refused is not None:
        return _pause_now(release, before, actor, f"Could not advance: {refused}", evidence, now)
    _enter(release, index, now)
    release.pending_request_id = None
    release.updated_at = now
    release.save()
    event_add(
        release, ReleaseEventKind.ADVANCED, actor=actor, reason=reason, evidence=evidence, at=now
    )
    _record(
        actor,
        actions.RELEASE_ADVANCE,
        release,
        before,
        reason=reason,
        evidence=evidence,
        extra={"flags": changed, **_approval_link(verified)},
    )
    return release


# --- Pause, resume, review ------------------------------------------------------------------


def _pause_now(
    release: Release, before: dict, actor: User, reason: str, evidence: Any, now: dt.datetime
) -> Release:
    _paused(release, reason, now)
    release.save()
    event_add(
        release, ReleaseEventKind.PAUSED, actor=actor, reason=reason, evidence=evidence, at=now
    )
    _record(actor, actions.RELEASE_PAUSE, release, before, reason=reason, evidence=evidence)
    return release


@transaction.atomic
def release_pause(*, actor: User, release: Release, reason: str, evidence: Any = None) -> Release:
    """Hold the release where it is (its flags keep their state). Pausing a paused release
    changes nothing."""
    release = release_lock(release)
    step_authorize(actor, actions.RELEASE_PAUSE, release, reason)
    if release.status == ReleaseStatus.PAUSED:
        return release
    if release.status != ReleaseStatus.IN_PROGRESS:
        raise step_refused(release, "pausing", "in progress")
    return _pause_now(
        release, release_view(release), actor, reason or "paused", evidence, timezone.now()
    )


@transaction.atomic
def release_resume(
    *, actor: User, release: Release, reason: str, approval: VerifiedApproval | int | None = None
) -> Release:
    """Continue a paused release: its current stage's state is set again and the hold
    restarts. Where approvals are required, only through an approved release.resume request
    (in production its approver becomes the one automation follows)."""
    release = release_lock(release)
    parameters = {"release": release.pk}
    verified = step_approval_verified(approval, release, actions.RELEASE_RESUME.name, parameters)
    step_authorize(
        actor,
        actions.RELEASE_RESUME,
        release,
        reason,
        approved_by=verified.first_approver if verified else None,
        request_instead=(
            parameters if release.status == ReleaseStatus.PAUSED and verified is None else None
        ),
    )
    if release.status != ReleaseStatus.PAUSED:
        raise step_refused(release, "resuming", "paused")
    if verified is None and needs_request(release):
        raise step_approval_required(actor, release, actions.RELEASE_RESUME, parameters, reason)
    before = release_view(release)
    now = timezone.now()
    if verified is not None:
        release.approval_request_id = verified.request_id
        release.approved_by = verified.first_approver
    status_set(release, ReleaseStatus.IN_PROGRESS, now=now)
    release.paused_reason, release.hold_started_at = "", now
    release.pending_request_id = None
    release.save()
    stage = stage_of(release, release.current_stage_index)
    changed = flags_drive(release, step_of(release, stage), actor=actor, reason=reason)
    event_add(release, ReleaseEventKind.RESUMED, actor=actor, reason=reason, at=now)
    _record(
        actor,
        actions.RELEASE_RESUME,
        release,
        before,
        reason=reason,
        extra={"flags": changed, **_approval_link(verified)},
    )
    return release


@transaction.atomic
def release_review(*, actor: User, release: Release, reason: str, evidence: Any) -> Release:
    """Pause for people to look: where approvals are required a release.resume request is
    opened (pending_request_id), and resuming goes through it."""
    release = release_pause(actor=actor, release=release, reason=reason, evidence=evidence)
    if needs_request(release) and release.pending_request_id is None:
        from approvals.services import approval_request_open

        request = approval_request_open(
            environment=release.environment,
            action=actions.RELEASE_RESUME.name,
            parameters={"release": release.pk},
            title=f"Review {release.name} before it resumes",
            checklist="none" if _checklist_optional(release) else None,
            reason=reason,
        )
        release.pending_request_id = request.pk
        release.save(update_fields=["pending_request_id"])
    return release


def release_hold_restart(*, release: Release, at: dt.datetime) -> None:
    """A gate failure short of its action: the stage's hold begins again."""
    Release.objects.filter(pk=release.pk).update(hold_started_at=at)
    release.hold_started_at = at


# --- Halve, roll back -----------------------------------------------------------------------


def halved(mode: str, percentage: int) -> tuple[str, int]:
    """floor(p/2); 1 becomes off; full becomes 50; off, shadow and allowlist stay."""
    if mode == Mode.FULL:
        return Mode.PERCENTAGE, 50
    if mode == Mode.PERCENTAGE:
        half = percentage // 2
        return (Mode.PERCENTAGE, half) if half > 0 else (Mode.OFF, 0)
    return mode, percentage


@transaction.atomic
def release_halve(*, actor: User, release: Release, reason: str, evidence: Any = None) -> Release:
    """Halve every flag's exposure and pause the release."""
    release = release_lock(release)
    step_authorize(actor, actions.RELEASE_HALVE, release, reason)
    if release.status not in (ReleaseStatus.IN_PROGRESS, ReleaseStatus.PAUSED):
        raise step_refused(release, "halving", "in progress or paused")
    before = release_view(release)
    now = timezone.now()
    changed = []
    for link in release.release_flags.select_related("flag").order_by("flag__key"):
        state = FlagState.objects.filter(flag=link.flag, environment=release.environment).first()
        mode, percentage = halved(state.mode, state.percentage) if state else (Mode.OFF, 0)
        new = flag_state_set(
            actor=actor,
            flag=link.flag,
            environment=release.environment,
            mode=mode,
            percentage=percentage,
            reason=reason or f"release {release.name} halved",
            origin=origin_of(release),
        )
        changed.append({"flag": link.flag.key, "mode": new.mode, "percentage": new.percentage})
    _paused(release, reason or "halved", now)
    release.save()
    event_add(
        release, ReleaseEventKind.HALVED, actor=actor, reason=reason, evidence=evidence, at=now
    )
    _record(
        actor,
        actions.RELEASE_HALVE,
        release,
        before,
        reason=reason,
        evidence=evidence,
        extra={"flags": changed},
    )
    return release


def release_mark_rolled_back(
    *,
    release: Release,
    actor: User,
    reason: str,
    evidence: Any = None,
    automatic: bool = False,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Mark a live release rolled back (no authorization, no flag writes: the caller has
    done both, e.g. release_rollback after turning its flags off; its audit event is the
    caller's). The one-release form of driving.releases_mark_rolled_back, which the
    environment rollback calls for every live release at once. Runs in the caller's
    transaction."""
    release = release_lock(release)
    stage = stage_of(release, release.current_stage_index)
    summary = {
        "id": release.pk,
        "name": release.name,
        "status_before": release.status,
        "stage_index": release.current_stage_index,
        "percentage": stage.percentage if stage else None,
    }
    releases_mark_rolled_back(
        [release],
        actor=actor,
        reason=reason,
        now=now,
        evidence=evidence,
        automatic=automatic or actor.is_system,
    )
    return summary


@transaction.atomic
def release_rollback(
    *, actor: User, release: Release, reason: str, evidence: Any = None
) -> Release:
    """Every flag of the release off, the release rolled back (it does not resume: it
    starts again as a new release). Rolling back a rolled-back release changes nothing."""
    release = release_lock(release)
    step_authorize(actor, actions.RELEASE_ROLLBACK, release, reason)
    if release.status == ReleaseStatus.ROLLED_BACK:
        return release
    if release.status not in LIVE_STATUSES:
        raise step_refused(release, "a rollback", "live (awaiting approval, in progress, paused)")
    before = release_view(release)
    changed = flags_drive(
        release, Step(Mode.OFF, 0, ()), actor=actor, reason=reason or "release rolled back"
    )
    release_mark_rolled_back(release=release, actor=actor, reason=reason, evidence=evidence)
    release.refresh_from_db()
    _record(
        actor,
        actions.RELEASE_ROLLBACK,
        release,
        before,
        reason=reason,
        evidence=evidence,
        extra={"flags": changed},
    )
    return release
