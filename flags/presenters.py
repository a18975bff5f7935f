"""What the flag pages show, built from selectors' rows: cells, columns, editors, history
rows and the words for states and changes. No queries beyond the prefetched relations,
except the per-environment policy questions (asked once per column, not per cell)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import QueryDict
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode

from releasecontrol import selectors as core_selectors
from releasecontrol.errors import Conflict
from releasecontrol.models import AuditEvent, Environment, User
from releasecontrol.policy import decide

from . import actions, selectors
from .forms import split_lines
from .guards import ApprovalRequired, may_request, request_to_make
from .models import Flag, FlagState, KillSwitch, Mode, Tag
from .rules import StateValue
from .selectors import KillSwitchCover
from .writes import state_value

# --- What a state looks like ---------------------------------------------------------------


def state_of(data: dict[str, Any] | None) -> StateValue:
    data = data or {}
    return StateValue.of(
        data.get("mode", Mode.OFF), data.get("percentage", 0), data.get("allowlist", [])
    )


def keys_text(count: int) -> str:
    return f"{count} key{'' if count == 1 else 's'}"


def state_summary(value: StateValue) -> str:
    """'percentage 25% + 2 keys', 'allowlist (3 keys)', 'full', 'off'."""
    if value.mode == Mode.PERCENTAGE:
        extra = f" + {keys_text(len(value.allowlist))}" if value.allowlist else ""
        return f"percentage {value.percentage}%{extra}"
    if value.mode == Mode.ALLOWLIST:
        return f"allowlist ({keys_text(len(value.allowlist))})"
    return value.mode


def describe_change(before: StateValue, after: StateValue) -> list[str]:
    """Exactly what changes: ['percentage 10% → 25%', 'allowlist +2 keys']."""
    changes = []
    if before.mode != after.mode:
        changes.append(f"mode {before.mode} → {after.mode}")
    if before.percentage != after.percentage:
        changes.append(f"percentage {before.percentage}% → {after.percentage}%")
    added, removed = after.allowlist - before.allowlist, before.allowlist - after.allowlist
    moves = [f"+{keys_text(len(added))}"] if added else []
    moves += [f"-{keys_text(len(removed))}"] if removed else []
    if moves:
        changes.append("allowlist " + ", ".join(moves))
    return changes


def value_text(value: Any) -> str:
    """A flag value as JSON, as people type it and SDKs receive it."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


# --- The grid -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """An environment as the signed-in user sees it. The abilities are hints for the
    page (read-only cells, hidden buttons); the services decide, and audit a refusal."""

    environment: Environment
    can_change: bool
    can_operate: bool
    switch: KillSwitch | None
    # Why this user may not change flags here (shown on read-only cells), else "".
    read_only_why: str = ""
    # Whether this user may ask for approval of a change here (request_changes).
    can_request: bool = False

    @property
    def offers_request(self) -> bool:
        """Cells offer "Request approval": where this user may not change flags but may
        ask, and where every increase needs an approved request."""
        return self.can_request and (
            not self.can_change or self.environment.require_approval_for_increase
        )


def column_of(user: User, environment: Environment, cover: KillSwitchCover) -> Column:
    change = decide(user, actions.FLAG_STATE_SET, environment, reduces_exposure=False)
    return Column(
        environment=environment,
        can_change=change.allowed,
        can_operate=decide(user, actions.KILL_SWITCH_ENGAGE, environment).allowed,
        switch=cover.for_environment(environment),
        read_only_why="" if change.allowed else change.why,
        can_request=may_request(user, environment),
    )


def request_approval_url(action: str, environment: Environment, parameters: dict) -> str:
    """The page that makes an approval request for exactly this change, prefilled."""
    return request_url_of(request_to_make(action, environment, parameters))


def request_url_of(request: dict[str, Any]) -> str:
    """The same, from the request an ApprovalRequired names."""
    query = {
        "action": request["action"],
        "environment": request["environment"],
        "parameters": json.dumps(request["parameters"], sort_keys=True, separators=(",", ":")),
    }
    return reverse("approval_request_new") + "?" + urlencode(query)


def columns_for(user: User, cover: KillSwitchCover) -> list[Column]:
    return [column_of(user, env, cover) for env in core_selectors.environment_list()]


@dataclass(frozen=True)
class Cell:
    flag: Flag
    environment: Environment
    state: FlagState | None  # None: never set, so off
    kill_switch: KillSwitch | None
    column: Column

    @property
    def can_change(self) -> bool:
        return self.column.can_change

    @property
    def value(self) -> StateValue:
        return state_value(self.state) if self.state else StateValue()

    @property
    def version(self) -> int | None:
        return self.state.version if self.state else None

    @property
    def mode_label(self) -> str:
        return Mode(self.value.mode).label

    @property
    def exposure(self) -> int:
        """The bar's width: how much of the traffic gets the on-value, allowlists aside."""
        value = self.value
        if value.mode == Mode.FULL:
            return 100
        return value.percentage if value.mode == Mode.PERCENTAGE else 0

    @property
    def dom_id(self) -> str:
        return f"cell-{self.flag.pk}-{self.environment.slug}"

    @property
    def values_pending(self) -> bool:
        """Its values need acceptance here and nobody accepted them: FLAG_NOT_FOUND."""
        if not self.flag.needs_acceptance_in(self.environment):
            return False
        return self.state is None or not self.state.serves_values_of(self.flag)

    @property
    def request_accept_url(self) -> str:
        """Where someone who may ask requests the acceptance ("" if not): values are accepted
        only through an approved request, whoever executes it."""
        if not self.values_pending or not self.column.can_request:
            return ""
        return request_approval_url(
            actions.FLAG_ACCEPT.name, self.environment, {"flag": self.flag.key}
        )

    @property
    def offers_request(self) -> bool:
        return self.column.offers_request

    @property
    def on_value_text(self) -> str:
        return value_text(self.flag.on_value)

    @property
    def off_value_text(self) -> str:
        return value_text(self.flag.off_value)


def cells_of(flag: Flag, columns: list[Column], cover: KillSwitchCover) -> list[Cell]:
    states = {s.environment_id: s for s in flag.states.all()}
    return [
        Cell(
            flag=flag,
            environment=col.environment,
            state=states.get(col.environment.pk),
            kill_switch=cover.covering(flag, col.environment),
            column=col,
        )
        for col in columns
    ]


def cell_for(user: User, key: str, slug: str) -> Cell:
    """One cell, fresh from the database (404 for an unknown flag or environment)."""
    flag = selectors.flag_get(key)
    environment = core_selectors.environment_get(slug)
    cover = selectors.kill_switch_cover(environment)
    state = next((s for s in flag.states.all() if s.environment_id == environment.pk), None)
    return Cell(
        flag=flag,
        environment=environment,
        state=state,
        kill_switch=cover.covering(flag, environment),
        column=column_of(user, environment, cover),
    )


# --- Editing a cell -------------------------------------------------------------------------


@dataclass(frozen=True)
class Notice:
    kind: str  # conflict | blocked | refused | error | info
    title: str
    text: str = ""
    # A way on: the page that makes the approval request the refusal named.
    link_url: str = ""
    link_label: str = ""


@dataclass
class Editor:
    """What the cell editor shows: the person's values (never lost) and what happened."""

    mode: str
    percentage: str
    allowlist_text: str
    version: int | None
    reason: str = ""
    stage: str = "edit"  # edit | confirm
    notice: Notice | None = None
    errors: dict[str, list[str]] = field(default_factory=dict)
    changes: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    before_summary: str = ""
    after_summary: str = ""
    reduces: bool = True
    # "change" saves through the service; "request" asks for approval of the change instead.
    purpose: str = "change"

    @classmethod
    def of_state(cls, cell: Cell) -> Editor:
        value = cell.value
        return cls(
            mode=value.mode,
            percentage=str(value.percentage),
            allowlist_text="\n".join(sorted(value.allowlist)),
            version=cell.version,
        )

    @classmethod
    def of_post(cls, data: QueryDict, version: int | None) -> Editor:
        return cls(
            mode=data.get("mode", Mode.OFF),
            percentage=data.get("percentage", ""),
            allowlist_text="\n".join(split_lines(data.get("allowlist", ""))),
            version=version,
            reason=data.get("reason", ""),
        )


def conflict_notice(cell: Cell, title: str) -> Notice:
    state = cell.state
    who = state.updated_by.username if state and state.updated_by else "someone"
    when = f"{timezone.localtime(state.updated_at):%H:%M:%S}" if state else "just now"
    return Notice(
        "conflict",
        title,
        f"{who} changed it at {when}: it is now {state_summary(cell.value)} (version "
        f"{cell.version}). Your values are kept below: save again to apply them over that "
        "change, or cancel to keep theirs.",
    )


def approval_notice(exc: ApprovalRequired) -> Notice:
    """A refusal that names the request to make: say why, and link to making it."""
    return Notice(
        "blocked",
        "Needs an approved request",
        exc.detail,
        link_url=request_url_of(exc.context["request"]),
        link_label="Request approval…",
    )


def request_notice(cell: Cell) -> Notice:
    """Said on the editor of a cell whose changes go through approval for this user."""
    if cell.can_change:
        why = (
            f"{cell.environment.name} requires an approved request for every change that "
            "increases exposure."
        )
    else:
        why = f"You may not change flags in {cell.environment.name} directly."
    return Notice(
        "info",
        "Request approval for this change",
        f"{why} Choose the state you want; the next page shows exactly what would change "
        "and asks for a go. Nothing changes until it is approved and executed.",
    )


def read_only_notice(cell: Cell) -> Notice:
    """Said on a cell this user may not change, before any edit (the policy's own reason)."""
    return Notice(
        "info",
        f"Read-only for you: {cell.column.read_only_why}.",
        "A release manager or on-call makes production changes."
        if cell.environment.is_production
        else "Ask someone who holds a role that changes flags here.",
    )


def refusal_notice(exc: Exception) -> tuple[Notice, int]:
    """A service's refusal as a notice and its status: 409 stale / blocked, 403, 400."""
    from .services import StaleEdit

    if isinstance(exc, StaleEdit):
        return Notice("conflict", "Someone else changed this first", exc.detail), 409
    if isinstance(exc, ApprovalRequired):
        return approval_notice(exc), 409
    if isinstance(exc, Conflict):
        return Notice("blocked", "Not allowed right now", exc.detail), 409
    if isinstance(exc, PermissionDenied):
        return Notice("refused", str(exc), "The refusal is recorded in the audit trail."), 403
    assert isinstance(exc, ValidationError)
    return Notice("error", "Check the form", " ".join(exc.messages)), 400


def kill_switch_notice(switch: KillSwitch) -> Notice:
    """Said before anyone edits a covered cell: which switch, who, when, why."""
    when = timezone.localtime(switch.engaged_at)
    return Notice(
        "blocked",
        f"Kill switch engaged: {switch.subject} in {switch.environment.name}",
        f"by {switch.engaged_by.username} at {when:%Y-%m-%d %H:%M}: “{switch.reason}”. Only "
        "changes that reduce exposure are allowed until someone releases it.",
    )


# --- History --------------------------------------------------------------------------------


ACTION_LABELS = {
    "flag.create": "Created the flag",
    "flag.state.set": "Changed the state",
    "flag.state.restore": "Restored an earlier state",
    "killswitch.engage": "Kill switch engaged",
    "killswitch.release": "Kill switch released",
    "flag.update": "Edited the description",
    "flag.archive": "Archived or unarchived",
    "flag.accept": "Accepted the values",
}


@dataclass
class HistoryRow:
    event: AuditEvent
    title: str
    changes: list[str]
    detail: str = ""
    result: str = ""
    # The state "Restore" brings back: the event's result, or what a kill switch turned off.
    restore_to: StateValue | None = None
    restore_label: str = "Restore this state"
    environment: Environment | None = None
    current_version: int | None = None


def history_row(event: AuditEvent, flag: Flag) -> HistoryRow:
    label = ACTION_LABELS.get(event.action, event.action)
    before = event.before if isinstance(event.before, dict) else {}
    after = event.after if isinstance(event.after, dict) else {}
    if event.outcome == "denied":
        requested = after.get("requested")
        asked = isinstance(requested, dict) and "mode" in requested
        return HistoryRow(
            event,
            f"Refused: {label[0].lower()}{label[1:]}",
            [f"asked for {state_summary(state_of(requested))}"] if asked else [],
            detail=str(after.get("refused", "")),
        )
    if event.action in selectors.STATE_CHANGE_ACTIONS:
        new = state_of(selectors.recorded_state(event, flag))
        changes = describe_change(state_of(before), new) or ["no change"]
        return HistoryRow(event, label, changes, result=state_summary(new), restore_to=new)
    if event.action == selectors.KILL_SWITCH_ENGAGE:
        previous = state_of(selectors.recorded_state(event, flag, side="before"))
        scope = str(after.get("scope", ""))
        return HistoryRow(
            event,
            f"{label} ({scope})" if scope else label,
            [f"{state_summary(previous)} → off"],
            result="off",
            restore_to=previous,
            restore_label="Restore the state before",
        )
    if event.action == "flag.accept":
        accepted = after.get("accepted") if isinstance(after.get("accepted"), dict) else {}
        return HistoryRow(
            event,
            label,
            [
                f"on {value_text(accepted.get('on_value'))}",
                f"off {value_text(accepted.get('off_value'))}",
            ],
            result="served in this environment",
        )
    if event.action == "flag.create":
        tags = ", ".join(after.get("tags") or []) or "none"
        return HistoryRow(
            event, label, [f"type {after.get('type', '?')}", f"tags {tags}"], result="off"
        )
    return HistoryRow(event, label, [])


@dataclass(frozen=True)
class EnvironmentRow:
    cell: Cell
    column: Column
    flag_switch: KillSwitch | None
    tag_switches: list[tuple[Tag, KillSwitch | None]]
