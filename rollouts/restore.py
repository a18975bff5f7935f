"""Restoring from an emergency rollback, deliberately: the environment kill switch a rollback
engaged is released only by executing an approved `rollback.restore` request, which names
the snapshot's flags to bring back. Executing it (a person, after approval; never scheduled,
never an agent) releases the switch and brings the chosen states back as new versions, in
one transaction. A rolled-back release does not resume: it starts again.

Parameters: `{"rollback": id, "flags": ["new-checkout", ...]}` (any subset of the snapshot's
flags, none included: the switch alone). The preview lists the kill switch (engaged now,
released after) and each chosen flag's state now and after.

Flags knows nothing of rollbacks: it asks the hold lookup installed here whether a switch is
held, and the cover installed here whether an approval of `rollback.restore` covers a change.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from flags.holds import Hold, approval_cover_install, hold_lookup_install
from flags.models import Flag, FlagState, KillSwitch
from flags.rules import StateValue, reduces_exposure
from flags.services import flag_state_restore, kill_switch_release, state_value
from releasecontrol import requestable
from releasecontrol.audit import audit_record
from releasecontrol.models import Environment, User
from releasecontrol.requestable import VerifiedApproval

from . import actions
from .emergency import rollback_target
from .models import Rollback

REQUEST_ENDPOINT = "POST /api/v1/approvals"
PARAMETERS = ("rollback", "flags")


def _rollback_of(raw: Any, errors: dict[str, str]) -> Rollback | None:
    if isinstance(raw, bool) or not isinstance(raw, int):
        errors["parameters.rollback"] = "required: the rollback's id (a number)"
        return None
    rollback = Rollback.objects.filter(pk=raw).select_related("environment").first()
    if rollback is None:
        errors["parameters.rollback"] = f"there is no rollback {raw}"
    elif rollback.restored_at is not None:
        errors["parameters.rollback"] = f"rollback {raw} was already restored"
    return rollback


def snapshot_flags(rollback: Rollback) -> dict[str, dict[str, Any]]:
    """flag key -> its state before the rollback, as the snapshot keeps it."""
    return {item["flag"]: item["before"] for item in rollback.flag_states}


def restore_parameters(raw: Mapping[str, Any]) -> dict[str, Any]:
    errors = {
        f"parameters.{name}": f"unknown parameter (send only {', '.join(PARAMETERS)})"
        for name in raw
        if name not in PARAMETERS
    }
    rollback = _rollback_of(raw.get("rollback"), errors)
    chosen = raw.get("flags", [])
    if not isinstance(chosen, list) or not all(isinstance(k, str) for k in chosen):
        errors["parameters.flags"] = "a list of flag keys from the rollback's snapshot"
        chosen = []
    elif len(set(chosen)) != len(chosen):
        errors["parameters.flags"] = "names a flag twice"
    elif rollback is not None:
        unknown = sorted(set(chosen) - snapshot_flags(rollback).keys())
        if unknown:
            errors["parameters.flags"] = (
                f"not in rollback {rollback.pk}'s snapshot: {', '.join(unknown)}"
            )
    if errors:
        raise ValidationError(errors)
    return {"rollback": rollback.pk, "flags": sorted(chosen)}


def restore_preview(environment: Environment, parameters: dict[str, Any]) -> dict[str, Any]:
    rollback = Rollback.objects.select_related("kill_switch").get(pk=parameters["rollback"])
    if rollback.environment_id != environment.pk:
        raise ValidationError(
            {"parameters.rollback": f"rollback {rollback.pk} is not of {environment.slug}"}
        )
    switch = rollback.kill_switch
    engaged = switch is not None and switch.released_at is None
    items: list[dict[str, Any]] = [
        {
            "type": "kill_switch",
            "id": str(switch.pk if switch else ""),
            "name": f"environment kill switch of {environment.slug}",
            "before": {"engaged": engaged},
            "after": {"engaged": False},
        }
    ]
    befores = snapshot_flags(rollback)
    chosen = parameters["flags"]
    flags = {f.key: f for f in Flag.objects.filter(key__in=chosen)}
    states = {
        s.flag_id: s
        for s in FlagState.objects.filter(environment=environment, flag__in=flags.values())
    }
    reduces = True
    for key in chosen:
        state = states.get(flags[key].pk) if key in flags else None
        now = state_value(state) if state else StateValue()
        version = state.version if state else 1
        then = befores[key]
        after = StateValue.of(then["mode"], then.get("percentage", 0), then.get("allowlist", []))
        reduces = reduces and reduces_exposure(now, after)
        items.append(
            {
                "type": "flag_state",
                "id": f"{key}@{environment.slug}",
                "name": f"{key} in {environment.slug}",
                "before": {**now.as_dict(), "version": version},
                "after": {**after.as_dict(), "version": version + int(after != now)},
            }
        )
    # Releasing the switch lets increases through again: never a reduction.
    return {"items": items, "reduces_exposure": False if engaged else reduces}


@transaction.atomic
def rollback_restore(
    *,
    actor: User,
    environment: Environment,
    parameters: dict[str, Any],
    approval: VerifiedApproval | int,
    reason: str,
) -> dict[str, Any]:
    """The executor: re-verify the approval here, release the rollback's kill switch and bring
    the chosen states back as new versions, each change audited and linked to the request."""
    verified = requestable.approval_verify(
        approval,
        action=actions.ROLLBACK_RESTORE.name,
        environment=environment,
        parameters=parameters,
    )
    rollback = Rollback.objects.select_for_update().get(pk=parameters["rollback"])
    if rollback.restored_at is not None:
        raise ValidationError({"parameters.rollback": f"rollback {rollback.pk} was restored"})
    # While this is set (and restored_at is not), the cover below lets this request's changes
    # through flags' own checks; restored_at closes it again before the commit.
    rollback.restore_request_id = verified.request_id
    rollback.save(update_fields=["restore_request_id"])
    if rollback.kill_switch is not None:
        kill_switch_release(
            actor=actor, switch=rollback.kill_switch, reason=reason, approval=verified
        )
    befores = snapshot_flags(rollback)
    flags = {f.key: f for f in Flag.objects.filter(key__in=parameters["flags"])}
    expected = {
        i["id"]: i["before"]["version"]
        for i in verified.preview["items"]
        if i["type"] == "flag_state"
    }
    restored = []
    for key in parameters["flags"]:
        state = flag_state_restore(
            actor=actor,
            flag=flags[key],
            environment=environment,
            to=befores[key],
            expected_version=expected.get(f"{key}@{environment.slug}"),
            reason=reason,
            approval=verified,
        )
        restored.append({"flag": key, **state_value(state).as_dict(), "version": state.version})
    rollback.restored_at, rollback.restored_by = timezone.now(), actor
    rollback.save(update_fields=["restored_at", "restored_by"])
    audit_record(
        actor=actor,
        action=actions.ROLLBACK_RESTORE.name,
        environment=environment,
        target=rollback_target(rollback, environment),
        before={"rollback": rollback.pk, "kill_switch_engaged": True},
        after={
            "rollback": rollback.pk,
            "restored": restored,
            "approval": verified.audit_link(),
        },
        reason=reason,
    )
    return {"rollback": rollback.pk, "kill_switch_released": True, "restored": restored}


# --- What flags asks -------------------------------------------------------------------------


def rollback_hold(switch: KillSwitch) -> Hold | None:
    """A switch an unrestored rollback engaged is held: released only by rollback.restore."""
    rollback = (
        Rollback.objects.filter(kill_switch=switch, restored_at__isnull=True)
        .select_related("environment")
        .first()
    )
    if rollback is None:
        return None
    environment = rollback.environment
    return Hold(
        action=actions.ROLLBACK_RESTORE.name,
        detail=(
            f"emergency rollback {rollback.pk} engaged it, so it is released only by executing "
            f"an approved {actions.ROLLBACK_RESTORE.name} request ({REQUEST_ENDPOINT} with the "
            "request below, choosing the flags to bring back; on-call page: Restore)."
        ),
        request={
            "action": actions.ROLLBACK_RESTORE.name,
            "environment": environment.slug,
            "parameters": {"rollback": rollback.pk, "flags": sorted(snapshot_flags(rollback))},
        },
        releasable_by=rollback.restore_request_id,
    )


def rollback_cover(
    approval: VerifiedApproval,
    environment: Environment,
    item_type: str,
    item_id: str,
    after: dict[str, Any],
) -> bool:
    """Whether the rollback.restore being executed now (in this transaction) covers this
    change: its rollback is being restored by this very request, and its approved preview
    lists the item with exactly this "after"."""
    restoring = Rollback.objects.filter(
        environment=environment,
        restore_request_id=approval.request_id,
        restored_at__isnull=True,
    ).exists()
    if not restoring:
        return False
    for item in approval.preview.get("items", []):
        if item.get("type") == item_type and str(item.get("id")) == item_id:
            approved = {k: v for k, v in item["after"].items() if k != "version"}
            return approved == after
    return False


def restore_register() -> None:
    """Called from RolloutsConfig.ready()."""
    requestable.register(
        name=actions.ROLLBACK_RESTORE.name,
        parameters=restore_parameters,
        preview=restore_preview,
        executor=rollback_restore,
        schedulable=False,
    )
    hold_lookup_install(rollback_hold)
    approval_cover_install(actions.ROLLBACK_RESTORE.name, rollback_cover)
