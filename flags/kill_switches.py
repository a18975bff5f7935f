"""Kill switches (flag, tag, environment): engaging turns every covered state off in one
transaction and records what it covered; releasing lets increases through and restores
nothing. A switch another app holds (flags/holds.py: an emergency rollback's) is released
only through the request the hold names."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from releasecontrol.audit import Target, audit_record, audit_record_denial
from releasecontrol.models import AuditEvent, Environment, User
from releasecontrol.policy import authorize
from releasecontrol.requestable import ApprovalInvalid, VerifiedApproval

from . import actions
from .holds import approval_covering, approval_covers, held, kill_switch_hold
from .models import Flag, FlagState, KillSwitch, KillSwitchScope, Mode, Tag
from .writes import flag_target, lock_environment

ENVIRONMENT_KILL_SWITCH_FIELDS = [
    "kill_switch_engaged",
    "kill_switch_engaged_at",
    "kill_switch_engaged_by",
    "kill_switch_reason",
    "flags_version",
]


@dataclass(frozen=True)
class KillSwitchResult:
    switch: KillSwitch
    already_engaged: bool
    turned_off: list[dict[str, Any]]  # [{"flag": key, "before": {...}}]
    event: AuditEvent | None = None  # the killswitch.engage event (None when already engaged)


def _kill_switch_subject(scope: str, flag: Flag | None, tag: Tag | None) -> tuple[Target, Q]:
    if scope == KillSwitchScope.FLAG and flag is not None:
        return flag_target(flag), Q(flag=flag)
    if scope == KillSwitchScope.TAG and tag is not None:
        return Target("tag", str(tag.pk), tag.name), Q(flag__in=tag.flags.values("pk"))
    if scope == KillSwitchScope.ENVIRONMENT and flag is None and tag is None:
        return Target("environment", "", ""), Q()
    raise ValidationError({"scope": "A kill switch covers one flag, one tag, or the environment."})


@transaction.atomic
def kill_switch_engage(
    *,
    actor: User,
    environment: Environment,
    scope: str = KillSwitchScope.ENVIRONMENT,
    flag: Flag | None = None,
    tag: Tag | None = None,
    reason: str,
) -> KillSwitchResult:
    """Turn every covered state off in one transaction; idempotent while engaged."""
    target, covered = _kill_switch_subject(scope, flag, tag)
    if target.type == "environment":
        target = Target("environment", str(environment.pk), environment.slug)
    authorize(
        actor,
        actions.KILL_SWITCH_ENGAGE,
        environment,
        target=target,
        requested={"scope": scope},
        reason=reason,
    )
    if not reason.strip():
        raise ValidationError({"reason": "Say why you are engaging the kill switch."})
    environment = lock_environment(environment)
    existing = (
        KillSwitch.objects.engaged()
        .filter(environment=environment, scope=scope, flag=flag, tag=tag)
        .first()
    )
    if existing is not None:
        return KillSwitchResult(existing, already_engaged=True, turned_off=[])
    switch = KillSwitch.objects.create(
        environment=environment,
        scope=scope,
        flag=flag,
        tag=tag,
        engaged_by=actor,
        reason=reason,
    )
    on = FlagState.objects.filter(covered, environment=environment).exclude(mode=Mode.OFF)
    # Plain values, not model instances: an environment switch may cover thousands of rows.
    # (The allowlist as text: most are empty, and decoding thousands of "[]" is not free.)
    # No row locks: every write to an environment's states takes the environment's row
    # first (lock_environment, above), so these are the rows the UPDATE below changes.
    covered_states = (
        on.annotate(allowlist_text=Cast("allowlist", TextField()))
        .order_by("flag__key")
        .values_list("flag__key", "mode", "percentage", "allowlist_text", "version")
    )
    now = timezone.now()
    turned_off = [
        {
            "flag": key,
            # StateValue.as_dict's shape, built directly (thousands of rows).
            "before": {
                "mode": mode,
                "percentage": percentage,
                "allowlist": [] if listed == "[]" else sorted(set(json.loads(listed))),
                "version": version,
            },
        }
        for key, mode, percentage, listed, version in covered_states
    ]
    # One UPDATE for every covered row: the same change each.
    on.update(mode=Mode.OFF, version=F("version") + 1, updated_at=now, updated_by=actor)
    if scope == KillSwitchScope.FLAG:
        switch.covered_flags.set([flag])
    elif scope == KillSwitchScope.TAG:
        # Covered until released, whatever happens to the tag afterwards.
        switch.covered_flags.set(list(tag.flags.values_list("pk", flat=True)))
    if scope == KillSwitchScope.ENVIRONMENT:
        environment.kill_switch_engaged = True
        environment.kill_switch_engaged_at = now
        environment.kill_switch_engaged_by = actor
        environment.kill_switch_reason = reason
    environment.flags_version += 1
    environment.save(update_fields=ENVIRONMENT_KILL_SWITCH_FIELDS)
    event = audit_record(
        actor=actor,
        action=actions.KILL_SWITCH_ENGAGE.name,
        environment=environment,
        target=target,
        before={"states": turned_off},
        after={"scope": scope, "kill_switch": switch.pk, "turned_off": len(turned_off)},
        reason=reason,
    )
    return KillSwitchResult(switch, already_engaged=False, turned_off=turned_off, event=event)


@transaction.atomic
def kill_switch_release(
    *,
    actor: User,
    switch: KillSwitch,
    reason: str,
    approval: VerifiedApproval | None = None,
) -> KillSwitch:
    """Let increases through again. Restores nothing: states come back one by one.

    A held switch (an emergency rollback's) is refused, 409 naming the request to make and
    recorded as denied, unless `approval` is the verified request that covers its release."""
    environment = switch.environment
    target, _ = _kill_switch_subject(switch.scope, switch.flag, switch.tag)
    if target.type == "environment":
        target = Target("environment", str(environment.pk), environment.slug)
    authorize(
        actor,
        actions.KILL_SWITCH_RELEASE,
        environment,
        target=target,
        requested={"scope": switch.scope},
        reason=reason,
    )
    if not reason.strip():
        raise ValidationError({"reason": "Say why it is safe to release the kill switch."})
    environment = lock_environment(environment)
    switch = KillSwitch.objects.select_for_update().get(pk=switch.pk)
    if switch.released_at is not None:
        return switch
    hold = kill_switch_hold(switch)
    covered = approval_covering(approval, actions.KILL_SWITCH_RELEASE.name) and approval_covers(
        approval, environment, "kill_switch", str(switch.pk), {"engaged": False}
    )
    if approval is not None and not covered:
        raise ApprovalInvalid(f"That approval does not cover releasing kill switch {switch.pk}.")
    if hold is not None and not covered:
        audit_record_denial(
            actor=actor,
            action=actions.KILL_SWITCH_RELEASE.name,
            environment=environment,
            target=target,
            after={"refused": hold.detail, "requested": hold.request},
            reason=reason,
        )
        raise held(hold)
    switch.released_at, switch.released_by, switch.release_reason = timezone.now(), actor, reason
    switch.save()
    if switch.scope == KillSwitchScope.ENVIRONMENT:
        environment.kill_switch_engaged = False
        environment.kill_switch_engaged_at = None
        environment.kill_switch_engaged_by = None
        environment.kill_switch_reason = ""
    environment.flags_version += 1
    environment.save(update_fields=ENVIRONMENT_KILL_SWITCH_FIELDS)
    audit_record(
        actor=actor,
        action=actions.KILL_SWITCH_RELEASE.name,
        environment=environment,
        target=target,
        before={
            "scope": switch.scope,
            "kill_switch": switch.pk,
            "engaged_by": switch.engaged_by.username,
            "engaged_reason": switch.reason,
        },
        after={"released": True, **({"approval": approval.audit_link()} if covered else {})},
        reason=reason,
    )
    return switch
