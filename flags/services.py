"""Every write to flags goes through here: authorize, lock, validate, change, audit, in one
transaction, and bump the environment's flags_version so evaluating processes reload.

Flags and their states are written in this module; accepting values in flags/acceptance.py,
kill switches in flags/kill_switches.py and SDK keys in flags/sdk_keys.py (all importable
from here too). What stands between a change and its making (the policy or the request to
make instead, approvals, blackout windows) is in flags/guards.py."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from releasecontrol.audit import Target, audit_record
from releasecontrol.errors import Conflict
from releasecontrol.models import Environment, User
from releasecontrol.policy import authorize
from releasecontrol.requestable import VerifiedApproval

from . import actions, hooks
from .acceptance import flag_accept, mark_accepted, may_accept  # noqa: F401
from .guards import (  # noqa: F401  (ApprovalRequired and BlackoutOpen: raised from here)
    ApprovalRequired,
    BlackoutOpen,
    approval_audit_link,
    approval_verified,
    authorize_change,
    blackout_check,
    increase_approval_check,
)
from .kill_switches import (  # noqa: F401  (the services every caller imports from here)
    KillSwitchResult,
    environment_rollback,
    kill_switch_engage,
    kill_switch_release,
)
from .models import Flag, FlagState, Mode, Tag
from .rules import MODES, StateValue, clean_allowlist, reduces_exposure
from .sdk_keys import IssuedSdkKey, sdk_key_issue, sdk_key_revoke  # noqa: F401
from .selectors import kill_switch_covering
from .writes import (  # noqa: F401  (StaleEdit: raised from here)
    StaleEdit,
    bump_all_flags_versions,
    bump_flags_version,
    flag_target,
    lock_environment,
    lock_state,
    stale_edit,
    state_value,
    state_view,
)


class KillSwitchEngaged(Conflict):
    code = "kill_switch_engaged"


def _tag_objects(names: Iterable[str]) -> list[Tag]:
    tags = []
    for name in sorted({n.strip().lower() for n in names if n and n.strip()}):
        tag = Tag(name=name)
        tag.full_clean(validate_unique=False)
        tags.append(Tag.objects.get_or_create(name=name)[0])
    return tags


@transaction.atomic
def flag_create(
    *,
    actor: User,
    key: str,
    name: str,
    description: str = "",
    tags: Iterable[str] = (),
    type: str = "boolean",
    on_value: Any = None,
    off_value: Any = None,
    owner: User | None = None,
    reason: str = "",
) -> Flag:
    """A new flag is off in every environment.

    A boolean's values are true and false (omitted means those; anything else is refused);
    other types need both values, and they must differ. Where its values need acceptance
    (production), they are accepted at once when the author holds flag.accept there;
    otherwise that environment answers FLAG_NOT_FOUND until an approved `flag.accept`
    request is executed (flag_accept).
    """
    authorize(
        actor,
        actions.FLAG_CREATE,
        _first_environment(),
        target=Target("flag", "", key),
        reason=reason,
    )
    if type == "boolean":
        on_value = True if on_value is None else on_value
        off_value = False if off_value is None else off_value
    else:
        missing = {
            name: f"A {type} flag needs both on_value and off_value."
            for name, value in (("on_value", on_value), ("off_value", off_value))
            if value is None
        }
        if missing:
            raise ValidationError(missing)
    flag = Flag(
        key=key,
        name=name or key,
        description=description,
        type=type,
        on_value=on_value,
        off_value=off_value,
        owner=owner or (actor if not actor.is_system else None),
    )
    flag.full_clean()
    flag.save()
    tag_objects = _tag_objects(tags)
    flag.tags.set(tag_objects)
    states = [FlagState(flag=flag, environment=env) for env in Environment.objects.all()]
    accepted_in = []
    now = timezone.now()
    for state in states:
        if flag.needs_acceptance_in(state.environment) and may_accept(actor, state.environment):
            mark_accepted(state, flag, actor, now)
            accepted_in.append(state.environment.slug)
    FlagState.objects.bulk_create(states)
    bump_all_flags_versions()  # every environment gained a flag (off)
    audit_record(
        actor=actor,
        action=actions.FLAG_CREATE.name,
        target=flag_target(flag),
        after={
            **flag_definition(flag, tags=[t.name for t in tag_objects]),
            "values_accepted_in": sorted(accepted_in),
        },
        reason=reason,
    )
    return flag


def _first_environment() -> Environment | None:
    return Environment.objects.order_by("position").first()


@transaction.atomic
def flag_update(
    *,
    actor: User,
    flag: Flag,
    name: str | None = None,
    description: str | None = None,
    tags: Iterable[str] | None = None,
    owner: User | None = None,
    reason: str = "",
) -> Flag:
    """Edit what people read about a flag. Its values and states change elsewhere."""
    authorize(
        actor, actions.FLAG_UPDATE, _first_environment(), target=flag_target(flag), reason=reason
    )
    flag = Flag.objects.select_for_update().get(pk=flag.pk)
    before = flag_definition(flag)
    if name is not None:
        flag.name = name
    if description is not None:
        flag.description = description
    if owner is not None:
        flag.owner = owner
    flag.full_clean()
    flag.save()
    if tags is not None:
        flag.tags.set(_tag_objects(tags))
    after = flag_definition(flag)
    if after != before:
        bump_all_flags_versions()
        audit_record(
            actor=actor,
            action=actions.FLAG_UPDATE.name,
            target=flag_target(flag),
            before=before,
            after=after,
            reason=reason,
        )
    return flag


@transaction.atomic
def flag_archive(*, actor: User, flag: Flag, archived: bool = True, reason: str = "") -> Flag:
    """Archive a flag that is off everywhere (evaluation then answers FLAG_NOT_FOUND)."""
    authorize(
        actor, actions.FLAG_ARCHIVE, _first_environment(), target=flag_target(flag), reason=reason
    )
    flag = Flag.objects.select_for_update().get(pk=flag.pk)
    if archived:
        still_on = list(
            FlagState.objects.filter(flag=flag)
            .exclude(mode=Mode.OFF)
            .values_list("environment__slug", flat=True)
        )
        if still_on:
            raise Conflict(
                f"{flag.key} is still on in {', '.join(still_on)}: turn it off everywhere "
                "before archiving it."
            )
    if flag.archived == archived:
        return flag
    flag.archived = archived
    flag.save(update_fields=["archived"])
    bump_all_flags_versions()
    audit_record(
        actor=actor,
        action=actions.FLAG_ARCHIVE.name,
        target=flag_target(flag),
        before={"archived": not archived},
        after={"archived": archived},
        reason=reason,
    )
    return flag


def flag_definition(flag: Flag, *, tags: list[str] | None = None) -> dict[str, Any]:
    return {
        "key": flag.key,
        "name": flag.name,
        "description": flag.description,
        "type": flag.type,
        "on_value": flag.on_value,
        "off_value": flag.off_value,
        "tags": tags if tags is not None else [t.name for t in flag.tags.all()],
        "archived": flag.archived,
    }


def _clean_change(
    current: StateValue, mode: str | None, percentage: Any, allowlist: Any
) -> StateValue:
    errors: dict[str, str] = {}
    new_mode = current.mode if mode is None else mode
    if new_mode not in MODES:
        errors["mode"] = f"must be one of {', '.join(MODES)}"
    new_percentage = current.percentage
    if percentage is not None:
        if isinstance(percentage, bool) or not isinstance(percentage, int):
            errors["percentage"] = "must be a whole number from 0 to 100"
        elif not 0 <= percentage <= 100:
            errors["percentage"] = "must be from 0 to 100"
        else:
            new_percentage = percentage
    new_allowlist = current.allowlist
    if allowlist is not None:
        try:
            new_allowlist = frozenset(clean_allowlist(allowlist))
        except ValueError as exc:
            errors["allowlist"] = str(exc)
    if errors:
        raise ValidationError(errors)
    return StateValue(new_mode, new_percentage, new_allowlist)


@transaction.atomic
def flag_state_set(
    *,
    actor: User,
    flag: Flag,
    environment: Environment,
    mode: str | None = None,
    percentage: int | None = None,
    allowlist: list[str] | None = None,
    expected_version: int | None = None,
    reason: str = "",
    approval: VerifiedApproval | int | None = None,
    action: str = actions.FLAG_STATE_SET.name,
    origin: str = "",
    plan_approved_by: User | None = None,
) -> FlagState:
    """Change one flag's state in one environment; omitted fields keep their values.

    A stale `expected_version` raises StaleEdit naming who changed it. Whoever the policy
    refuses but may request the change (developers and agents in production) gets
    ApprovalRequired naming the request to make (the refusal recorded all the same). An
    increase of exposure is refused while a kill switch covers the flag, inside an open
    blackout window (except through an approved emergency request), and without an approval
    where the environment requires one for increases. `approval` (a request id) is
    re-verified here, after the state is locked: approved, unexpired, this very change, and
    no drift from its preview; the change's audit event links the request and its approvers.

    `origin` names what drives the change ("release:12"; "" for a person's own change) and
    reaches the listeners of flags.hooks. `plan_approved_by` is the person whose go approved
    the plan this change follows, as the caller read it from a verified approval record (a
    release's start approval): the system actor follows that plan, and where increases need
    an approval the plan's approval stands for it. Kill switches and blackout windows hold
    all the same.
    """
    environment = lock_environment(environment)
    state = lock_state(flag, environment)
    before = state_value(state)
    after = _clean_change(before, mode, percentage, allowlist)
    reduces = reduces_exposure(before, after)
    requested = {**after.as_dict(), "version": expected_version}
    parameters = {"flag": flag.key, **after.as_dict()}
    target = flag_target(flag)
    verified = approval_verified(
        approval, action=action, environment=environment, parameters=parameters
    )
    authorize_change(
        actor,
        action,
        environment,
        reduces_exposure=reduces,
        approval=verified,
        parameters=parameters,
        target=target,
        requested=requested,
        reason=reason,
        plan_approved_by=plan_approved_by,
    )
    if expected_version is not None and expected_version != state.version:
        raise stale_edit(flag, environment, state, expected_version)
    if environment.is_production and not reason.strip():
        raise ValidationError({"reason": "A production change needs a reason: say why."})
    if not reduces:
        switch = kill_switch_covering(flag, environment)
        if switch is not None:
            raise KillSwitchEngaged(
                f"A kill switch covering {switch.subject} in {environment.slug} was engaged by "
                f"{switch.engaged_by.username} ({switch.reason}): only changes that reduce "
                "exposure are allowed until someone releases it.",
            )
        blackout_check(environment, approval=verified)
        if plan_approved_by is None:
            increase_approval_check(
                actor,
                action,
                environment,
                approval=verified,
                parameters=parameters,
                target=target,
                requested=requested,
                reason=reason,
            )
    if after == before:
        return state
    state.mode, state.percentage, state.allowlist = (
        after.mode,
        after.percentage,
        sorted(after.allowlist),
    )
    state.version += 1
    state.updated_at = timezone.now()
    state.updated_by = actor
    state.save()
    bump_flags_version(environment)
    audit_record(
        actor=actor,
        action=action,
        environment=environment,
        target=target,
        before={**before.as_dict(), "version": state.version - 1},
        after={
            **after.as_dict(),
            "version": state.version,
            **approval_audit_link(verified),
            **({"origin": origin} if origin else {}),
        },
        reason=reason,
    )
    hooks.state_changed(
        actor=actor,
        flag=flag,
        environment=environment,
        before=before,
        after=after,
        reason=reason,
        origin=origin,
    )
    return state


def flag_state_restore(
    *,
    actor: User,
    flag: Flag,
    environment: Environment,
    to: dict[str, Any],
    expected_version: int | None = None,
    reason: str = "",
) -> FlagState:
    """Bring back an earlier state (from the audit trail) as a new, audited change."""
    return flag_state_set(
        actor=actor,
        flag=flag,
        environment=environment,
        mode=to.get("mode", Mode.OFF),
        percentage=to.get("percentage", 0),
        allowlist=list(to.get("allowlist", [])),
        expected_version=expected_version,
        reason=reason,
        action=actions.FLAG_STATE_RESTORE.name,
    )
