"""Every write to flags goes through here: authorize, lock, validate, change, audit, in one
transaction, and bump the environment's flags_version so evaluating processes reload."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from releasecontrol.audit import Target, audit_record
from releasecontrol.credentials import credential_new
from releasecontrol.errors import Conflict
from releasecontrol.models import Environment, User
from releasecontrol.policy import authorize

from . import actions
from .models import Flag, FlagState, KillSwitch, KillSwitchScope, Mode, SdkKey, Tag
from .rules import MODES, StateValue, clean_allowlist, reduces_exposure


class StaleEdit(Conflict):
    code = "stale"


class KillSwitchEngaged(Conflict):
    code = "kill_switch_engaged"


class ApprovalRequired(Conflict):
    code = "approval_required"


def _flag_target(flag: Flag) -> Target:
    return Target("flag", str(flag.pk), flag.key)


def _bump_flags_version(environment: Environment) -> None:
    """Evaluating processes compare this number with their snapshot's."""
    Environment.objects.filter(pk=environment.pk).update(flags_version=F("flags_version") + 1)


def _bump_all_flags_versions() -> None:
    """A change every environment shows (a new flag, its tags, archiving): boards and
    evaluating processes reload."""
    Environment.objects.update(flags_version=F("flags_version") + 1)


def _lock_environment(environment: Environment) -> Environment:
    """Serialize changes to one environment's flags (kill switches and edits alike).

    FOR NO KEY UPDATE, so that a denial recorded on another connection (its audit row
    refers to this environment) is not blocked by the lock its own request holds.
    """
    return Environment.objects.select_for_update(no_key=True).get(pk=environment.pk)


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
    """A new flag is off in every environment."""
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
    elif on_value is None or off_value is None:
        raise ValidationError({"on_value": f"A {type} flag needs both on_value and off_value."})
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
    FlagState.objects.bulk_create(
        [FlagState(flag=flag, environment=env) for env in Environment.objects.all()]
    )
    _bump_all_flags_versions()  # every environment gained a flag (off)
    audit_record(
        actor=actor,
        action=actions.FLAG_CREATE.name,
        target=_flag_target(flag),
        after=flag_definition(flag, tags=[t.name for t in tag_objects]),
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
        actor, actions.FLAG_UPDATE, _first_environment(), target=_flag_target(flag), reason=reason
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
        _bump_all_flags_versions()
        audit_record(
            actor=actor,
            action=actions.FLAG_UPDATE.name,
            target=_flag_target(flag),
            before=before,
            after=after,
            reason=reason,
        )
    return flag


@transaction.atomic
def flag_archive(*, actor: User, flag: Flag, archived: bool = True, reason: str = "") -> Flag:
    """Archive a flag that is off everywhere (evaluation then answers FLAG_NOT_FOUND)."""
    authorize(
        actor, actions.FLAG_ARCHIVE, _first_environment(), target=_flag_target(flag), reason=reason
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
    _bump_all_flags_versions()
    audit_record(
        actor=actor,
        action=actions.FLAG_ARCHIVE.name,
        target=_flag_target(flag),
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


def state_value(state: FlagState) -> StateValue:
    return StateValue.of(state.mode, state.percentage, state.allowlist)


def state_view(state: FlagState) -> dict[str, Any]:
    return {**state_value(state).as_dict(), "version": state.version}


def _lock_state(flag: Flag, environment: Environment) -> FlagState:
    state, _ = FlagState.objects.get_or_create(flag=flag, environment=environment)
    return (
        FlagState.objects.select_for_update(of=("self",))
        .select_related("updated_by")
        .get(pk=state.pk)
    )


def engaged_kill_switch_for(flag: Flag, environment: Environment) -> KillSwitch | None:
    """The engaged kill switch covering this flag in this environment, if any."""
    return (
        KillSwitch.objects.engaged()
        .filter(environment=environment)
        .filter(
            Q(scope=KillSwitchScope.ENVIRONMENT)
            | Q(scope=KillSwitchScope.FLAG, flag=flag)
            | Q(scope=KillSwitchScope.TAG, tag__in=flag.tags.all())
        )
        .select_related("engaged_by", "flag", "tag")
        .order_by("engaged_at")
        .first()
    )


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
    approved_by: User | None = None,
    action: str = actions.FLAG_STATE_SET.name,
) -> FlagState:
    """Change one flag's state in one environment; omitted fields keep their values.

    A stale `expected_version` raises StaleEdit naming who changed it; an increase of
    exposure is refused while a kill switch covers the flag, or (until approval
    requests exist) where the environment requires approval for increases.
    """
    environment = _lock_environment(environment)
    state = _lock_state(flag, environment)
    before = state_value(state)
    after = _clean_change(before, mode, percentage, allowlist)
    reduces = reduces_exposure(before, after)
    requested = {**after.as_dict(), "version": expected_version}
    authorize(
        actor,
        action,
        environment,
        reduces_exposure=reduces,
        approved_by=approved_by,
        target=_flag_target(flag),
        requested=requested,
        reason=reason,
    )
    if expected_version is not None and expected_version != state.version:
        who = state.updated_by.username if state.updated_by else "someone"
        raise StaleEdit(
            f"{flag.key} in {environment.slug} was changed by {who} at "
            f"{timezone.localtime(state.updated_at):%Y-%m-%d %H:%M:%S %Z} (now version "
            f"{state.version}, you edited version {expected_version}). Reload and try again.",
            current=state_view(state),
            updated_by=who,
        )
    if environment.is_production and not reason.strip():
        raise ValidationError({"reason": "A production change needs a reason: say why."})
    if not reduces:
        switch = engaged_kill_switch_for(flag, environment)
        if switch is not None:
            raise KillSwitchEngaged(
                f"A kill switch covering {switch.subject} in {environment.slug} was engaged by "
                f"{switch.engaged_by.username} ({switch.reason}): only changes that reduce "
                "exposure are allowed until someone releases it.",
            )
        if environment.require_approval_for_increase and approved_by is None:
            raise ApprovalRequired(
                f"{environment.name} requires approval for changes that increase exposure, "
                "and approval requests are not available yet. Only changes that reduce "
                "exposure can be made here now.",
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
    _bump_flags_version(environment)
    audit_record(
        actor=actor,
        action=action,
        environment=environment,
        target=_flag_target(flag),
        before={**before.as_dict(), "version": state.version - 1},
        after={**after.as_dict(), "version": state.version},
        reason=reason,
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


# --- Kill switches ------------------------------------------------------------------------


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


def _kill_switch_subject(scope: str, flag: Flag | None, tag: Tag | None) -> tuple[Target, Q]:
    if scope == KillSwitchScope.FLAG and flag is not None:
        return _flag_target(flag), Q(flag=flag)
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
    environment = _lock_environment(environment)
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
    states = list(
        FlagState.objects.select_for_update(of=("self",))
        .filter(covered, environment=environment)
        .exclude(mode=Mode.OFF)
        .select_related("flag")
        .order_by("flag__key")
    )
    now = timezone.now()
    turned_off = [{"flag": s.flag.key, "before": state_view(s)} for s in states]
    for state in states:
        state.mode, state.version = Mode.OFF, state.version + 1
        state.updated_at, state.updated_by = now, actor
    FlagState.objects.bulk_update(states, ["mode", "version", "updated_at", "updated_by"])
    if scope == KillSwitchScope.ENVIRONMENT:
        environment.kill_switch_engaged = True
        environment.kill_switch_engaged_at = now
        environment.kill_switch_engaged_by = actor
        environment.kill_switch_reason = reason
    environment.flags_version += 1
    environment.save(update_fields=ENVIRONMENT_KILL_SWITCH_FIELDS)
    audit_record(
        actor=actor,
        action=actions.KILL_SWITCH_ENGAGE.name,
        environment=environment,
        target=target,
        before={"states": turned_off},
        after={"scope": scope, "kill_switch": switch.pk, "turned_off": len(turned_off)},
        reason=reason,
    )
    return KillSwitchResult(switch, already_engaged=False, turned_off=turned_off)


@transaction.atomic
def kill_switch_release(*, actor: User, switch: KillSwitch, reason: str) -> KillSwitch:
    """Let increases through again. Restores nothing: states come back one by one."""
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
    environment = _lock_environment(environment)
    switch = KillSwitch.objects.select_for_update().get(pk=switch.pk)
    if switch.released_at is not None:
        return switch
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
        after={"released": True},
        reason=reason,
    )
    return switch


def environment_rollback(*, actor: User, environment: Environment, reason: str) -> KillSwitchResult:
    """The big button: the environment kill switch (level-1 rollback: every flag off)."""
    return kill_switch_engage(
        actor=actor, environment=environment, scope=KillSwitchScope.ENVIRONMENT, reason=reason
    )


# --- SDK keys -------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedSdkKey:
    key: SdkKey
    raw: str  # shown once, never stored


@transaction.atomic
def sdk_key_issue(
    *, actor: User, environment: Environment, name: str = "default", reason: str = ""
) -> IssuedSdkKey:
    target = Target("sdkkey", "", f"{environment.slug}: {name}")
    authorize(actor, actions.SDK_KEY_ISSUE, environment, target=target, reason=reason)
    credential = credential_new(SdkKey.PREFIX)
    key = SdkKey.objects.create(
        environment=environment,
        name=name,
        digest=credential.digest,
        hint=credential.hint,
        created_by=actor,
    )
    _bump_flags_version(environment)  # evaluating processes learn the new key
    audit_record(
        actor=actor,
        action=actions.SDK_KEY_ISSUE.name,
        environment=environment,
        target=Target("sdkkey", str(key.pk), f"{environment.slug}: {name}"),
        after={"name": name, "hint": key.hint},
        reason=reason,
    )
    return IssuedSdkKey(key, credential.raw)


@transaction.atomic
def sdk_key_revoke(*, actor: User, key: SdkKey, reason: str = "") -> SdkKey:
    target = Target("sdkkey", str(key.pk), f"{key.environment.slug}: {key.name}")
    authorize(actor, actions.SDK_KEY_REVOKE, key.environment, target=target, reason=reason)
    key = SdkKey.objects.select_for_update().get(pk=key.pk)
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        _bump_flags_version(key.environment)  # evaluating processes drop the key
        audit_record(
            actor=actor,
            action=actions.SDK_KEY_REVOKE.name,
            environment=key.environment,
            target=target,
            after={"revoked_at": key.revoked_at},
            reason=reason,
        )
    return key
