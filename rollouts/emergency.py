"""The emergency rollback of a whole environment: the one service every environment-wide off
button calls (the board's environment kill switch, the on-call page, the API,
`manage.py rollback`).

One transaction: the environment kill switch engaged (flags' kill_switch_engage, every flag
state off), every live release rolled back, a Rollback row with the snapshot of what it
changed, one `environment.rollback` audit event holding the releases and the reason, and the
notifications written to the outbox (delivered after commit). The kill switch's own
`killswitch.engage` event stays beside it and holds every state it turned off (each flag's
history shows what turned it off); the rollback event and the Rollback row name that event
for the flags, so the thousands of states are serialised, hashed and stored once, in the
append-only chain, where restore reads them (`Rollback.flag_states`).

Idempotent under concurrency: the environment row is locked first, so a second or concurrent
press waits, then finds the first rollback and answers with it, changing nothing. A kill
switch engaged earlier without a rollback still gets its live releases stopped (the rollback
attaches to that switch). No approval, no Redis, no Celery.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from flags.kill_switches import KillSwitchResult
from flags.models import KillSwitch, KillSwitchScope
from flags.services import kill_switch_engage, lock_environment
from releasecontrol.audit import Target, audit_record
from releasecontrol.collector import with_collector_paused
from releasecontrol.models import Environment, User
from releasecontrol.notifications.services import notification_enqueue
from releasecontrol.policy import authorize

from . import actions
from .driving import releases_mark_rolled_back
from .models import Release, Rollback

NOTIFICATION_EVENT = "environment.rollback"
# How many flag keys a notification names (the snapshot page has them all).
NOTIFIED_FLAGS = 50


@dataclass(frozen=True)
class RollbackResult:
    rollback: Rollback
    already: bool
    turned_off: list[dict[str, Any]] = field(default_factory=list)
    releases_stopped: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rollback_id(self) -> int:
        return self.rollback.pk

    @property
    def link(self) -> str:
        return rollback_link(self.rollback)


def rollback_link(rollback: Rollback) -> str:
    return reverse("rollouts:rollback_detail", args=[rollback.pk])


def environment_target(environment: Environment) -> Target:
    return Target("environment", str(environment.pk), environment.slug)


def rollback_target(rollback: Rollback, environment: Environment) -> Target:
    return Target("rollback", str(rollback.pk), f"rollback of {environment.slug}")


@with_collector_paused  # 10,000 states allocate enough for full collections that free nothing
@transaction.atomic
def environment_rollback(*, actor: User, environment: Environment, reason: str) -> RollbackResult:
    """Every flag off and every live release rolled back in the environment, now."""
    authorize(
        actor,
        actions.ENVIRONMENT_ROLLBACK,
        environment,
        target=environment_target(environment),
        requested={"environment": environment.slug},
        reason=reason,
    )
    if not (reason or "").strip():
        raise ValidationError({"reason": "Say why you are rolling back: what is burning?"})
    # Resolved before the lock: the first reverse() in a process (manage.py rollback) loads
    # every URL module, about a second that no flag write in the environment should wait for.
    reverse("rollouts:rollback_detail", args=[0])
    environment = lock_environment(environment)  # concurrent presses queue here
    engaged = (
        KillSwitch.objects.engaged()
        .filter(environment=environment, scope=KillSwitchScope.ENVIRONMENT)
        .select_related("engaged_by")
        .first()
    )
    if engaged is not None:
        first = Rollback.objects.filter(kill_switch=engaged).select_related("actor").first()
        if first is not None:
            return RollbackResult(first, already=True)
    now = timezone.now()
    live = list(
        Release.objects.live()
        .filter(environment=environment)
        .select_for_update(of=("self",))
        .order_by("pk")
    )
    switch = kill_switch_engage(
        actor=actor, environment=environment, scope=KillSwitchScope.ENVIRONMENT, reason=reason
    )
    stopped = releases_mark_rolled_back(
        live, actor=actor, reason=reason, now=now, evidence={"emergency_rollback": True}
    )
    turned_off = switch.turned_off
    # The flag states are in the kill switch's event, recorded once (Rollback.flag_states).
    snapshot = {
        "releases": stopped,
        "kill_switch": {"id": switch.switch.pk, "engaged_earlier": switch.already_engaged},
    }
    rollback = Rollback.objects.create(
        environment=environment,
        kill_switch=switch.switch,
        actor=actor,
        reason=reason,
        created_at=now,
        snapshot=snapshot,
        states_event=switch.event,
    )
    audit_record(
        actor=actor,
        action=actions.ENVIRONMENT_ROLLBACK.name,
        environment=environment,
        target=rollback_target(rollback, environment),
        # The states turned off are in the chain once: in the kill switch's event just before
        # this one (each flag's history reads them there). after_version is version + 1.
        before={"flags": flags_recorded(switch), "releases": stopped},
        after={
            "rollback": rollback.pk,
            "kill_switch": switch.switch.pk,
            "turned_off": len(turned_off),
            "releases_stopped": [r["id"] for r in stopped],
        },
        reason=reason,
    )
    _notify(rollback, environment, actor=actor, turned_off=turned_off, stopped=stopped)
    return RollbackResult(rollback, already=False, turned_off=turned_off, releases_stopped=stopped)


def flags_recorded(switch: KillSwitchResult) -> dict[str, Any]:
    """What the rollback event says of the flag states: how many, and the killswitch.engage
    event that holds each one's state before (10,000 states are recorded once, not twice)."""
    return {
        "turned_off": len(switch.turned_off),
        "states_in_event": switch.event.pk if switch.event is not None else None,
    }


def _notify(
    rollback: Rollback,
    environment: Environment,
    *,
    actor: User,
    turned_off: list[dict[str, Any]],
    stopped: list[dict[str, Any]],
) -> None:
    """The environment's email and webhook hear of it (the outbox: delivered after commit)."""
    link = rollback_link(rollback)
    keys = [t["flag"] for t in turned_off]
    named = ", ".join(keys[:NOTIFIED_FLAGS]) + (
        f" and {len(keys) - NOTIFIED_FLAGS} more" if len(keys) > NOTIFIED_FLAGS else ""
    )
    lines = [
        f"{actor.get_username()} rolled {environment.name} back (rollback {rollback.pk}).",
        "",
        f"Why: {rollback.reason}",
        f"Flags turned off: {len(keys)}" + (f" ({named})" if keys else ""),
        "Releases stopped: "
        + (", ".join(f"{r['name']} {r['version']}".strip() for r in stopped) or "none"),
        "The environment kill switch stays engaged until a rollback.restore request is "
        "approved and executed.",
        f"Snapshot: {link}",
    ]
    notification_enqueue(
        environment=environment,
        event=NOTIFICATION_EVENT,
        subject=f"[{environment.slug}] Rolled back by {actor.get_username()}: {rollback.reason}",
        text="\n".join(lines),
        payload={
            "rollback": rollback.pk,
            "environment": environment.slug,
            "actor": actor.get_username(),
            "reason": rollback.reason,
            "turned_off": len(keys),
            "flags": keys[:NOTIFIED_FLAGS],
            "releases_stopped": [{"id": r["id"], "name": r["name"]} for r in stopped],
        },
        link=link,
    )
