"""A person who changes a live release's flag by hand pauses that release (flags.hooks).

Release-driven changes carry the release's origin and do not pause it. The pause is the
system's (it only reduces what automation will do), with the person and their reason
recorded; it runs inside the flag change's transaction.
"""

from __future__ import annotations

from typing import Any

from flags.models import Flag
from releasecontrol.audit import audit_record
from releasecontrol.models import Environment, User
from releasecontrol.policy import authorize

from . import actions
from .driving import event_add, origin_of, release_lock, release_target, release_view
from .models import ReleaseEventKind, ReleaseFlag, ReleaseStatus


def flag_changed_by_hand(
    *,
    actor: User,
    flag: Flag,
    environment: Environment,
    before: Any,
    after: Any,
    reason: str,
    origin: str,
) -> None:
    link = (
        ReleaseFlag.objects.filter(flag=flag, environment=environment, live=True)
        .select_related("release")
        .first()
    )
    if link is None or origin == origin_of(link.release):
        return
    release = release_lock(link.release)
    if release.status != ReleaseStatus.IN_PROGRESS:
        return
    system = User.system()
    why = (
        f"{flag.key} was changed by hand by {actor.get_username()} "
        f"({before.mode} {before.percentage}% -> {after.mode} {after.percentage}%): "
        f"{reason or 'no reason given'}"
    )
    authorize(system, actions.RELEASE_PAUSE, environment, target=release_target(release))
    previous = release_view(release)
    release.status, release.paused_reason = ReleaseStatus.PAUSED, why
    release.save(update_fields=["status", "paused_reason"])
    event_add(release, ReleaseEventKind.PAUSED, actor=system, reason=why)
    audit_record(
        actor=system,
        action=actions.PAUSED_BY_HAND,
        environment=environment,
        target=release_target(release),
        before=previous,
        after={**release_view(release), "changed_by": actor.get_username(), "flag": flag.key},
        reason=why,
    )
