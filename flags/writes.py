"""What every flag write shares: the audit target, the locks, the flags_version bumps that
tell evaluating processes and boards to reload, and a state as the audit trail records it."""

from __future__ import annotations

from typing import Any

from django.db.models import F
from django.utils import timezone

from releasecontrol.audit import Target
from releasecontrol.errors import Conflict
from releasecontrol.models import Environment

from .models import Flag, FlagState
from .rules import StateValue


class StaleEdit(Conflict):
    code = "stale"


def flag_target(flag: Flag) -> Target:
    return Target("flag", str(flag.pk), flag.key)


def bump_flags_version(environment: Environment) -> None:
    """Evaluating processes compare this number with their snapshot's."""
    Environment.objects.filter(pk=environment.pk).update(flags_version=F("flags_version") + 1)


def bump_all_flags_versions() -> None:
    """A change every environment shows (a new flag, its tags, archiving): boards and
    evaluating processes reload."""
    Environment.objects.update(flags_version=F("flags_version") + 1)


def lock_environment(environment: Environment) -> Environment:
    """Serialize changes to one environment's flags (kill switches and edits alike).

    FOR NO KEY UPDATE, so that a denial recorded on another connection (its audit row
    refers to this environment) is not blocked by the lock its own request holds.
    """
    return Environment.objects.select_for_update(no_key=True).get(pk=environment.pk)


def state_value(state: FlagState) -> StateValue:
    return StateValue.of(state.mode, state.percentage, state.allowlist)


def state_view(state: FlagState) -> dict[str, Any]:
    return {**state_value(state).as_dict(), "version": state.version}


def lock_state(flag: Flag, environment: Environment) -> FlagState:
    state, _ = FlagState.objects.get_or_create(flag=flag, environment=environment)
    return (
        FlagState.objects.select_for_update(of=("self",))
        .select_related("updated_by")
        .get(pk=state.pk)
    )


def stale_edit(
    flag: Flag, environment: Environment, state: FlagState, expected_version: int
) -> StaleEdit:
    who = state.updated_by.username if state.updated_by else "someone"
    return StaleEdit(
        f"{flag.key} in {environment.slug} was changed by {who} at "
        f"{timezone.localtime(state.updated_at):%Y-%m-%d %H:%M:%S %Z} (now version "
        f"{state.version}, you edited version {expected_version}). Reload and try again.",
        current=state_view(state),
        updated_by=who,
    )
