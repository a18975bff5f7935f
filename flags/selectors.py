"""Reads of flags, with their joins done: a fixed number of queries whatever the flag count."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.db.models import Count, Prefetch, Q, QuerySet, Sum
from django.http import Http404

from releasecontrol.audit.selectors import AuditFilter, audit_events
from releasecontrol.models import AuditEvent, Environment, Outcome

from .models import Flag, FlagState, KillSwitch, KillSwitchScope, Tag


def flag_list(*, search: str = "", tag: str = "", include_archived: bool = False) -> QuerySet[Flag]:
    """Flags with their tags and their states in every environment prefetched."""
    flags = Flag.objects.all()
    if not include_archived:
        flags = flags.filter(archived=False)
    if search:
        flags = flags.filter(
            Q(key__icontains=search) | Q(name__icontains=search) | Q(description__icontains=search)
        )
    if tag:
        flags = flags.filter(tags__name=tag)
    return (
        flags.select_related("owner")
        .prefetch_related(
            "tags",
            Prefetch(
                "states",
                queryset=FlagState.objects.select_related("environment", "updated_by"),
            ),
        )
        .order_by("key")
    )


def flags_fingerprint() -> str:
    """Changes whenever anything a board shows changes: every flag write (a new flag, its tags,
    its states, kill switches, archiving) bumps environments' flags_version in its transaction."""
    total = Environment.objects.aggregate(total=Sum("flags_version"))["total"] or 0
    return str(total)


def flag_get(key: str) -> Flag:
    try:
        return flag_list(include_archived=True).get(key=key)
    except Flag.DoesNotExist:
        raise Http404(f"No flag {key!r}") from None


def states_by_environment(flag: Flag) -> dict[str, FlagState | None]:
    """The flag's state in each environment, in promotion order (None: never set, so off)."""
    states = {s.environment.slug: s for s in flag.states.all()}
    return {env.slug: states.get(env.slug) for env in Environment.objects.order_by("position")}


def tag_list() -> QuerySet[Tag]:
    return Tag.objects.order_by("name")


def engaged_kill_switches(environment: Environment | None = None) -> QuerySet[KillSwitch]:
    """Engaged switches, newest first per environment. Which flags each covers: KillSwitchCover."""
    switches = KillSwitch.objects.engaged().select_related(
        "environment", "flag", "tag", "engaged_by"
    )
    if environment is not None:
        switches = switches.filter(environment=environment)
    return switches.order_by("environment__position", "-engaged_at", "-pk")


class KillSwitchCover:
    """Which engaged kill switch covers a flag in an environment: the one answer the board,
    the flag pages, the dashboard, the API and the services give.

    A switch covers a flag where it is engaged when it is the environment's, when it is the
    flag's own, when it is a tag switch and the flag has that tag now, or when it covered the
    flag at engagement (it keeps covering every flag it turned off until it is released).
    When several cover a flag, the earliest engaged is the one named (it has held longest).
    Built from one read of the engaged switches; uses the flags' prefetched tags.
    """

    def __init__(self, switches: Iterable[KillSwitch]) -> None:
        self.switches = list(switches)
        self._by_environment: dict[int, list[KillSwitch]] = {}
        self._covered: dict[int, frozenset[int]] = {}
        for switch in sorted(self.switches, key=lambda s: (s.engaged_at, s.pk)):
            self._by_environment.setdefault(switch.environment_id, []).append(switch)
            self._covered[switch.pk] = frozenset(f.pk for f in switch.covered_flags.all())

    def in_environment(self, environment: Environment) -> list[KillSwitch]:
        """Every switch engaged there, earliest first."""
        return list(self._by_environment.get(environment.pk, []))

    def all_covering(self, flag: Flag, environment: Environment) -> list[KillSwitch]:
        tag_ids = {tag.pk for tag in flag.tags.all()}
        return [
            switch
            for switch in self._by_environment.get(environment.pk, [])
            if switch.scope == KillSwitchScope.ENVIRONMENT
            or (switch.scope == KillSwitchScope.FLAG and switch.flag_id == flag.pk)
            or (switch.scope == KillSwitchScope.TAG and switch.tag_id in tag_ids)
            or flag.pk in self._covered[switch.pk]
        ]

    def covering(self, flag: Flag, environment: Environment) -> KillSwitch | None:
        found = self.all_covering(flag, environment)
        return found[0] if found else None

    def for_environment(self, environment: Environment) -> KillSwitch | None:
        """The environment's own switch (every flag there), if engaged."""
        return self._first(environment, KillSwitchScope.ENVIRONMENT)

    def for_flag(self, flag: Flag, environment: Environment) -> KillSwitch | None:
        """The flag's own switch there, if engaged."""
        return self._first(environment, KillSwitchScope.FLAG, flag_id=flag.pk)

    def for_tag(self, tag: Tag, environment: Environment) -> KillSwitch | None:
        """The tag's switch there, if engaged."""
        return self._first(environment, KillSwitchScope.TAG, tag_id=tag.pk)

    def _first(self, environment: Environment, scope: str, **match: int) -> KillSwitch | None:
        for switch in self._by_environment.get(environment.pk, []):
            if switch.scope == scope and all(getattr(switch, k) == v for k, v in match.items()):
                return switch
        return None


def kill_switch_cover(environment: Environment | None = None) -> KillSwitchCover:
    """The bulk form (two queries): for a page of flags, or every environment."""
    covered = Prefetch("covered_flags", queryset=Flag.objects.only("pk"))
    return KillSwitchCover(engaged_kill_switches(environment).prefetch_related(covered))


def kill_switch_covering(flag: Flag, environment: Environment) -> KillSwitch | None:
    """The engaged kill switch covering this flag here, if any (KillSwitchCover's rule)."""
    return kill_switch_cover(environment).covering(flag, environment)


STATE_CHANGE_ACTIONS = ("flag.state.set", "flag.state.restore")
KILL_SWITCH_ENGAGE = "killswitch.engage"


def recorded_state(event: AuditEvent, flag: Flag, *, side: str = "after") -> dict | None:
    """The state of `flag` an audit event recorded: a state change's `after` (or `before`), or
    what an engaged kill switch turned off (its `before`). None when it recorded none."""
    if event.action in STATE_CHANGE_ACTIONS and event.target_id == str(flag.pk):
        state = event.before if side == "before" else event.after
    elif event.action == KILL_SWITCH_ENGAGE and side == "before":
        states = (event.before or {}).get("states", []) if isinstance(event.before, dict) else []
        state = next((s.get("before") for s in states if s.get("flag") == flag.key), None)
    else:
        return None
    return state if isinstance(state, dict) and "mode" in state else None


LIVE_MODES = ("full", "percentage", "allowlist", "shadow")


@dataclass(frozen=True)
class EnvironmentFlags:
    """What the dashboard says of one environment's flags."""

    switches: list[KillSwitch]  # every engaged kill switch there, any scope, earliest first
    live: list[tuple[str, int]]  # (mode, how many unarchived flags are in it), LIVE_MODES order


def environment_flags_summary(environments: Sequence[Environment]) -> dict[int, EnvironmentFlags]:
    """Per environment, in two queries whatever the number of flags and switches."""
    switches: dict[int, list[KillSwitch]] = {env.pk: [] for env in environments}
    for switch in engaged_kill_switches().order_by("engaged_at", "pk"):
        switches.setdefault(switch.environment_id, []).append(switch)
    counts: dict[tuple[int, str], int] = {}
    for row in (
        FlagState.objects.filter(flag__archived=False, mode__in=LIVE_MODES)
        .values("environment_id", "mode")
        .annotate(n=Count("pk"))
        .order_by()
    ):
        counts[(row["environment_id"], row["mode"])] = row["n"]
    return {
        env.pk: EnvironmentFlags(
            switches=switches.get(env.pk, []),
            live=[(mode, counts.get((env.pk, mode), 0)) for mode in LIVE_MODES],
        )
        for env in environments
    }


class NotRestorable(Exception):
    """The event holds no state of this flag here that a restore could bring back."""


def audit_event_find(pk: int) -> AuditEvent | None:
    return AuditEvent.objects.filter(pk=pk).first()


def restorable_state(
    event: AuditEvent, flag: Flag, environment: Environment, side: str = ""
) -> dict:
    """The state an audit event recorded for this flag here, by event id whatever its age:
    a change's `after` (or `before`), or what an engaged kill switch turned off (its
    `before`). Raises NotRestorable saying why not."""

    def refuse(why: str) -> NotRestorable:
        return NotRestorable(f"Audit event {event.pk} {why}.")

    if event.outcome != Outcome.OK:
        raise refuse("records a refused action: nothing changed then")
    if event.environment_id != environment.slug:
        raise refuse(f"is about {event.environment_id or 'no environment'}, not {environment.slug}")
    if event.action in STATE_CHANGE_ACTIONS:
        if event.target_type != "flag" or event.target_id != str(flag.pk):
            raise refuse(f"is about {event.target_name}, not {flag.key}")
    elif event.action == KILL_SWITCH_ENGAGE:
        if side == "after":
            raise refuse('is a kill switch: its "after" is off; restore its "before"')
        side = "before"
        if recorded_state(event, flag, side=side) is None:
            raise refuse(f"is a kill switch that did not turn {flag.key} off")
    else:
        raise refuse(f"is a {event.action}, not a change of a flag's state")
    state = recorded_state(event, flag, side=side or "after")
    if state is None:
        raise refuse("holds no flag state on that side")
    return state


def flag_history(
    flag: Flag,
    *,
    environment: Environment | None = None,
    limit: int = 200,
    before: int | None = None,
) -> list[AuditEvent]:
    """The flag's audit events, newest first: its own changes and the kill switches that hit it
    (they name the flags they turned off inside `before`). `before` (an event id) pages on:
    only older events."""
    own = audit_events(AuditFilter(target_type="flag", target_id=str(flag.pk)))
    kills = audit_events(
        AuditFilter(
            action=KILL_SWITCH_ENGAGE,
            outcome="ok",
            environment=environment.slug if environment else "",
        )
    ).filter(before__states__contains=[{"flag": flag.key}])
    if environment is not None:
        # Flag-wide events (creation, edits) have no environment and belong to every tab.
        own = own.filter(Q(environment=environment) | Q(environment__isnull=True))
    if before is not None:
        own, kills = own.filter(pk__lt=before), kills.filter(pk__lt=before)
    events = {e.pk: e for e in [*own[:limit], *kills[:limit]]}
    return sorted(events.values(), key=lambda e: e.pk, reverse=True)[:limit]
