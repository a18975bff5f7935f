"""Reads of flags, with their joins done: a fixed number of queries whatever the flag count."""

from __future__ import annotations

from django.db.models import Prefetch, Q, QuerySet, Sum
from django.http import Http404

from releasecontrol.audit.selectors import AuditFilter, audit_events
from releasecontrol.models import AuditEvent, Environment

from .models import Flag, FlagState, KillSwitch, Tag


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
    switches = KillSwitch.objects.engaged().select_related(
        "environment", "flag", "tag", "engaged_by"
    )
    if environment is not None:
        switches = switches.filter(environment=environment)
    return switches.order_by("environment__position", "-engaged_at")


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
