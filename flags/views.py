"""The flag board (HTMX) and flag pages.

Each view parses a form, calls one service and answers with a partial (htmx) or a
redirect / full page (plain forms). Service refusals map to inline answers: 400 bad
input, 403 policy (already audited as denied), 409 stale edit / kill switch / approval.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from releasecontrol import selectors as core_selectors
from releasecontrol.errors import Conflict
from releasecontrol.models import AuditEvent, Environment, User
from releasecontrol.policy import decide

from . import actions, selectors, services
from .forms import (
    FlagCreateForm,
    FlagStateForm,
    KillSwitchEngageForm,
    KillSwitchReleaseForm,
    StateRestoreForm,
    split_list,
)
from .models import Flag, FlagState, KillSwitch, KillSwitchScope, Mode, Tag
from .rules import StateValue, reduces_exposure

PAGE_SIZE = 50
BOARD = "flags/board.html"
DETAIL = "flags/flag_detail.html"


# --- What a state looks like ---------------------------------------------------------------


def state_of(data: dict[str, Any] | None) -> StateValue:
    data = data or {}
    return StateValue.of(
        data.get("mode", Mode.OFF), data.get("percentage", 0), data.get("allowlist", [])
    )


def _keys(count: int) -> str:
    return f"{count} key{'' if count == 1 else 's'}"


def state_summary(value: StateValue) -> str:
    """'percentage 25% + 2 keys', 'allowlist (3 keys)', 'full', 'off'."""
    if value.mode == Mode.PERCENTAGE:
        extra = f" + {_keys(len(value.allowlist))}" if value.allowlist else ""
        return f"percentage {value.percentage}%{extra}"
    if value.mode == Mode.ALLOWLIST:
        return f"allowlist ({_keys(len(value.allowlist))})"
    return value.mode


def describe_change(before: StateValue, after: StateValue) -> list[str]:
    """Exactly what changes: ['percentage 10% → 25%', 'allowlist +2 keys']."""
    changes = []
    if before.mode != after.mode:
        changes.append(f"mode {before.mode} → {after.mode}")
    if before.percentage != after.percentage:
        changes.append(f"percentage {before.percentage}% → {after.percentage}%")
    added, removed = after.allowlist - before.allowlist, before.allowlist - after.allowlist
    moves = [f"+{_keys(len(added))}"] if added else []
    moves += [f"-{_keys(len(removed))}"] if removed else []
    if moves:
        changes.append("allowlist " + ", ".join(moves))
    return changes


# --- The grid -------------------------------------------------------------------------------


class SwitchIndex:
    """Engaged kill switches, looked up per cell without a query per cell."""

    def __init__(self, switches: list[KillSwitch]) -> None:
        self.switches = switches
        self._environment: dict[int, KillSwitch] = {}
        self._flag: dict[tuple[int, int], KillSwitch] = {}
        self._tag: dict[tuple[int, int], KillSwitch] = {}
        for switch in switches:
            if switch.scope == KillSwitchScope.ENVIRONMENT:
                self._environment[switch.environment_id] = switch
            elif switch.scope == KillSwitchScope.FLAG:
                self._flag[(switch.environment_id, switch.flag_id)] = switch
            else:
                self._tag[(switch.environment_id, switch.tag_id)] = switch

    def for_environment(self, environment: Environment) -> KillSwitch | None:
        return self._environment.get(environment.pk)

    def for_flag(self, flag: Flag, environment: Environment) -> KillSwitch | None:
        return self._flag.get((environment.pk, flag.pk))

    def for_tag(self, tag: Tag, environment: Environment) -> KillSwitch | None:
        return self._tag.get((environment.pk, tag.pk))

    def covering(self, flag: Flag, environment: Environment) -> KillSwitch | None:
        """Uses the flag's prefetched tags."""
        found = self.for_environment(environment) or self.for_flag(flag, environment)
        for tag in flag.tags.all():
            found = found or self.for_tag(tag, environment)
        return found


@dataclass(frozen=True)
class Column:
    """An environment as the signed-in user sees it. The abilities are hints for the
    page; the services decide (and a refused attempt is audited)."""

    environment: Environment
    can_change: bool
    can_operate: bool
    switch: KillSwitch | None


def _columns(user: User, switches: SwitchIndex) -> list[Column]:
    return [
        Column(
            environment=env,
            can_change=decide(user, actions.FLAG_STATE_SET, env, reduces_exposure=False).allowed,
            can_operate=decide(user, actions.KILL_SWITCH_ENGAGE, env).allowed,
            switch=switches.for_environment(env),
        )
        for env in core_selectors.environment_list()
    ]


@dataclass(frozen=True)
class Cell:
    flag: Flag
    environment: Environment
    state: FlagState | None  # None: never set, so off
    kill_switch: KillSwitch | None
    can_change: bool

    @property
    def value(self) -> StateValue:
        return services.state_value(self.state) if self.state else StateValue()

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


def _cells(flag: Flag, columns: list[Column], switches: SwitchIndex) -> list[Cell]:
    states = {s.environment_id: s for s in flag.states.all()}
    return [
        Cell(
            flag=flag,
            environment=col.environment,
            state=states.get(col.environment.pk),
            kill_switch=switches.covering(flag, col.environment),
            can_change=col.can_change,
        )
        for col in columns
    ]


def _cell(user: User, key: str, slug: str) -> Cell:
    """One cell, fresh from the database (404 for an unknown flag or environment)."""
    flag = selectors.flag_get(key)
    environment = core_selectors.environment_get(slug)
    switches = SwitchIndex(list(selectors.engaged_kill_switches(environment)))
    state = next((s for s in flag.states.all() if s.environment_id == environment.pk), None)
    return Cell(
        flag=flag,
        environment=environment,
        state=state,
        kill_switch=switches.covering(flag, environment),
        can_change=decide(
            user, actions.FLAG_STATE_SET, environment, reduces_exposure=False
        ).allowed,
    )


def _wants_partial(request: HttpRequest) -> bool:
    return bool(request.htmx) and not request.htmx.history_restore_request


def _back_url(request: HttpRequest, default: str) -> str:
    """Where a plain (non-htmx) form returns to: its `next`, if it stays on this site."""
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    if request.htmx and request.htmx.current_url_abs_path:
        return request.htmx.current_url_abs_path
    return default


@require_GET
def board(request: HttpRequest) -> HttpResponse:
    search = request.GET.get("q", "").strip()[:100]
    tag = request.GET.get("tag", "").strip()[:50]
    fingerprint = selectors.flags_fingerprint()
    if _wants_partial(request) and request.GET.get("known") == fingerprint:
        return HttpResponse(status=204)  # nothing changed: htmx leaves the grid (and editors) alone
    page = Paginator(selectors.flag_list(search=search, tag=tag), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    switches = SwitchIndex(list(selectors.engaged_kill_switches()))
    columns = _columns(request.user, switches)
    operate = {col.environment.pk: col.can_operate for col in columns}
    filters = {k: v for k, v in (("q", search), ("tag", tag)) if v}
    board_url = reverse("flags:board")
    context = {
        "columns": columns,
        "rows": [(flag, _cells(flag, columns, switches)) for flag in page],
        "page": page,
        "page_range": page.paginator.get_elided_page_range(page.number, on_each_side=2),
        "page_query": urlencode(filters) + "&" if filters else "",
        "poll_url": board_url
        + "?"
        + urlencode({**filters, "page": page.number, "known": fingerprint}),
        "search": search,
        "tag": tag,
        "tags": list(selectors.tag_list()),
        "engaged": [(s, operate.get(s.environment_id, False)) for s in switches.switches],
        "can_operate_any": any(operate.values()),
        "back_url": request.get_full_path() if not request.htmx else _back_url(request, board_url),
    }
    return render(request, BOARD + ("#board" if _wants_partial(request) else ""), context)


# --- Editing a cell -------------------------------------------------------------------------


@dataclass(frozen=True)
class Notice:
    kind: str  # conflict | blocked | refused | error | info
    title: str
    text: str = ""


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
            allowlist_text="\n".join(split_list(data.get("allowlist", ""))),
            version=version,
            reason=data.get("reason", ""),
        )


def _render_cell(
    request: HttpRequest,
    cell: Cell,
    *,
    editor: Editor | None = None,
    status: int = 200,
    just_saved: bool = False,
) -> HttpResponse:
    context = {
        "cell": cell,
        "editor": editor,
        "just_saved": just_saved,
        "modes": Mode.choices,
        "inline": _wants_partial(request),
        "back_url": _back_url(request, reverse("flags:board")),
    }
    template = BOARD + "#cell" if _wants_partial(request) else "flags/state_edit.html"
    return render(request, template, context, status=status)


def _conflict_notice(cell: Cell, title: str) -> Notice:
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


@require_GET
def state_cell(request: HttpRequest, key: str, environment: str) -> HttpResponse:
    """The cell as it is now (the editor's Cancel)."""
    if not _wants_partial(request):
        return redirect("flags:detail", key=key)
    return _render_cell(request, _cell(request.user, key, environment))


@require_GET
def state_edit(request: HttpRequest, key: str, environment: str) -> HttpResponse:
    cell = _cell(request.user, key, environment)
    editor = Editor.of_state(cell)
    if not cell.can_change:
        editor.notice = Notice(
            "info",
            "Your roles do not allow changing flags here.",
            "If you save, the change is refused and the refusal is recorded in the audit trail.",
        )
    return _render_cell(request, cell, editor=editor)


@require_POST
def state_set(request: HttpRequest, key: str, environment: str) -> HttpResponse:
    cell = _cell(request.user, key, environment)
    form = FlagStateForm(request.POST)
    if not form.is_valid():
        editor = Editor.of_post(request.POST, cell.version)
        editor.errors = {name: list(errors) for name, errors in form.errors.items()}
        return _render_cell(request, cell, editor=editor, status=400)
    data = form.cleaned_data
    editor = Editor.of_post(request.POST, data["version"])
    if request.POST.get("back"):
        return _render_cell(request, cell, editor=editor)
    if cell.environment.is_production and not data["confirmed"]:
        return _confirmation(request, cell, editor, data)
    try:
        state = services.flag_state_set(
            actor=request.user,
            flag=cell.flag,
            environment=cell.environment,
            mode=data["mode"],
            percentage=data["percentage"],
            allowlist=data["allowlist"],
            expected_version=data["version"],
            reason=data["reason"],
        )
    except (Conflict, PermissionDenied, ValidationError) as exc:
        return _refused(request, key, environment, editor, exc, data)
    fresh = _cell(request.user, key, environment)
    summary = state_summary(services.state_value(state))
    message = f"{key} in {fresh.environment.name}: {summary} (version {state.version})."
    if not _wants_partial(request):
        messages.success(request, f"Saved. {message}")
        return HttpResponseRedirect(_back_url(request, reverse("flags:board")), status=303)
    response = _render_cell(request, fresh, just_saved=True)
    response["HX-Trigger"] = json.dumps(
        {
            "flag-state-changed": {
                "flag": key,
                "environment": environment,
                "version": state.version,
                "message": message,
            }
        }
    )
    return response


def _confirmation(
    request: HttpRequest, cell: Cell, editor: Editor, data: dict[str, Any], *, status: int = 200
) -> HttpResponse:
    """A production edit comes back once, naming exactly what will change."""
    if data["version"] is not None and data["version"] != cell.version:
        editor.version = cell.version
        editor.notice = _conflict_notice(cell, "Someone else changed this while you were editing")
        return _render_cell(request, cell, editor=editor, status=409)
    before = cell.value
    after = StateValue.of(
        data["mode"],
        before.percentage if data["percentage"] is None else data["percentage"],
        data["allowlist"],
    )
    editor.stage = "confirm"
    editor.changes = describe_change(before, after)
    editor.added = sorted(after.allowlist - before.allowlist)
    editor.removed = sorted(before.allowlist - after.allowlist)
    editor.before_summary, editor.after_summary = state_summary(before), state_summary(after)
    editor.reduces = reduces_exposure(before, after)
    return _render_cell(request, cell, editor=editor, status=status)


def _refused(
    request: HttpRequest,
    key: str,
    environment: str,
    editor: Editor,
    exc: Exception,
    data: dict[str, Any],
) -> HttpResponse:
    """The service said no: show why in the cell, keeping every value typed."""
    cell = _cell(request.user, key, environment)
    status = 409
    if isinstance(exc, services.StaleEdit):
        editor.version = cell.version  # saving again is a deliberate overwrite
        editor.notice = _conflict_notice(cell, "Someone else changed this while you were editing")
    elif isinstance(exc, Conflict):
        editor.notice = Notice("blocked", "Not allowed right now", exc.detail)
    elif isinstance(exc, PermissionDenied):
        status = 403
        editor.notice = Notice("refused", str(exc), "The refusal is recorded in the audit trail.")
    else:
        assert isinstance(exc, ValidationError)
        status = 400
        editor.errors = _errors_of(exc)
        if cell.environment.is_production and "reason" in editor.errors:
            return _confirmation(request, cell, editor, data, status=400)
    return _render_cell(request, cell, editor=editor, status=status)


def _errors_of(exc: ValidationError) -> dict[str, list[str]]:
    """Field -> messages; errors not about one field go under "general"."""
    if hasattr(exc, "error_dict"):
        return {
            ("general" if name == "__all__" else name): list(msgs)
            for name, msgs in exc.message_dict.items()
        }
    return {"general": list(exc.messages)}


# --- Flag pages: create, detail with history ------------------------------------------------


def _add_errors(form: FlagCreateForm, exc: ValidationError) -> None:
    for name, errors in _errors_of(exc).items():
        form.add_error(name if name in form.fields else None, errors)


@require_http_methods(["GET", "POST"])
def flag_create(request: HttpRequest) -> HttpResponse:
    form = FlagCreateForm(request.POST or None)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                flag = services.flag_create(actor=request.user, **form.service_kwargs())
            except PermissionDenied as exc:
                status = 403
                form.add_error(None, f"{exc} The refusal is recorded in the audit trail.")
            except ValidationError as exc:
                _add_errors(form, exc)
            else:
                messages.success(request, f"Created {flag.key}: it is off in every environment.")
                return redirect("flags:detail", key=flag.key)
    first = core_selectors.environment_list().first()
    context = {
        "form": form,
        "can_create": decide(request.user, actions.FLAG_CREATE, first).allowed,
    }
    return render(request, "flags/flag_create.html", context, status=status)


ACTION_LABELS = {
    "flag.create": "Created the flag",
    "flag.state.set": "Changed the state",
    "flag.state.restore": "Restored an earlier state",
    "killswitch.engage": "Kill switch engaged",
    "killswitch.release": "Kill switch released",
    "flag.update": "Edited the description",
    "flag.archive": "Archived or unarchived",
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


@require_GET
def flag_detail(request: HttpRequest, key: str) -> HttpResponse:
    flag = selectors.flag_get(key)
    tab = "history" if request.GET.get("tab") == "history" else "state"
    fingerprint = selectors.flags_fingerprint()
    if _wants_partial(request) and request.GET.get("known") == fingerprint:
        return HttpResponse(status=204)
    switches = SwitchIndex(list(selectors.engaged_kill_switches()))
    columns = _columns(request.user, switches)
    cells = _cells(flag, columns, switches)
    context: dict[str, Any] = {
        "flag": flag,
        "tab": tab,
        "columns": columns,
        "back_url": reverse("flags:detail", args=[flag.key]),
        "fingerprint": fingerprint,
        "on_value": json.dumps(flag.on_value),
        "off_value": json.dumps(flag.off_value),
    }
    if tab == "state":
        context["rows"] = [
            EnvironmentRow(
                cell,
                col,
                switches.for_flag(flag, col.environment),
                [(t, switches.for_tag(t, col.environment)) for t in flag.tags.all()],
            )
            for cell, col in zip(cells, columns, strict=True)
        ]
    else:
        by_slug = {cell.environment.slug: cell for cell in cells}
        chosen = by_slug.get(request.GET.get("environment", ""))
        rows = []
        for event in selectors.flag_history(
            flag, environment=chosen.environment if chosen else None
        ):
            row = history_row(event, flag)
            cell = by_slug.get(event.environment_id or "")
            if cell is not None:
                row.environment, row.current_version = cell.environment, cell.version
            rows.append(row)
        context.update(history=rows, chosen=chosen.environment.slug if chosen else "")
    return render(request, DETAIL + ("#tab" if _wants_partial(request) else ""), context)


def _history_row_for(cell: Cell, event_id: int) -> HistoryRow | None:
    for event in selectors.flag_history(cell.flag, environment=cell.environment):
        if event.pk == event_id and event.environment_id == cell.environment.slug:
            return history_row(event, cell.flag)
    return None


def _action_answer(
    request: HttpRequest,
    notice: Notice,
    *,
    status: int = 200,
    changed: bool = False,
    default_back: str,
    partial: str = BOARD + "#notice",
    extra: dict[str, Any] | None = None,
) -> HttpResponse:
    """A kill switch or restore result: a small partial plus an event for the page (htmx),
    or a redirect with a message / a small page (plain form)."""
    back = _back_url(request, default_back)
    context = {
        "notice": notice,
        "back_url": back,
        "inline": _wants_partial(request),
        **(extra or {}),
    }
    if not _wants_partial(request):
        if status == 200 and partial.endswith("#notice"):
            level = messages.SUCCESS if notice.kind == "ok" else messages.INFO
            messages.add_message(request, level, f"{notice.title}. {notice.text}".strip())
            return HttpResponseRedirect(back, status=303)
        return render(request, "flags/action.html", {**context, "partial": partial}, status=status)
    response = render(request, partial, context, status=status)
    if changed:
        message = f"{notice.title}. {notice.text}".strip()
        response["HX-Trigger"] = json.dumps({"flags-changed": {"message": message}})
    return response


def _refusal_notice(exc: Exception) -> tuple[Notice, int]:
    if isinstance(exc, services.StaleEdit):
        return Notice("conflict", "Someone else changed this first", exc.detail), 409
    if isinstance(exc, Conflict):
        return Notice("blocked", "Not allowed right now", exc.detail), 409
    if isinstance(exc, PermissionDenied):
        return Notice("refused", str(exc), "The refusal is recorded in the audit trail."), 403
    assert isinstance(exc, ValidationError)
    return Notice("error", "Check the form", " ".join(exc.messages)), 400


def _restore_confirmation(
    request: HttpRequest, cell: Cell, row: HistoryRow, version: int | None, *, error: str = ""
) -> HttpResponse:
    """A production restore comes back once, naming what will change, asking the reason."""
    assert row.restore_to is not None
    stale = version is not None and version != cell.version
    context = {
        "cell": cell,
        "row": row,
        "stale": stale,
        "changes": describe_change(cell.value, row.restore_to) or ["nothing changes"],
        "target_summary": state_summary(row.restore_to),
        "reduces": reduces_exposure(cell.value, row.restore_to),
        "error": error,
    }
    return _action_answer(
        request,
        Notice("info", "Confirm"),
        status=409 if stale else 400 if error else 200,
        default_back=reverse("flags:detail", args=[cell.flag.key]) + "?tab=history",
        partial=DETAIL + "#restore_confirm",
        extra=context,
    )


@require_POST
def state_restore(request: HttpRequest, key: str, environment: str) -> HttpResponse:
    cell = _cell(request.user, key, environment)
    detail_url = reverse("flags:detail", args=[key]) + "?tab=history"
    form = StateRestoreForm(request.POST)
    if not form.is_valid():
        notice = Notice("error", "Bad request", "Restore needs an event and the current version.")
        return _action_answer(request, notice, status=400, default_back=detail_url)
    data = form.cleaned_data
    row = _history_row_for(cell, data["event"])
    if row is None or row.restore_to is None:
        notice = Notice("error", "Nothing to restore", f"No such state in {key}'s history here.")
        return _action_answer(request, notice, status=404, default_back=detail_url)
    if cell.environment.is_production and not data["confirmed"]:
        return _restore_confirmation(request, cell, row, data["version"])
    try:
        state = services.flag_state_restore(
            actor=request.user,
            flag=cell.flag,
            environment=cell.environment,
            to=row.restore_to.as_dict(),
            expected_version=data["version"],
            reason=data["reason"],
        )
    except (Conflict, PermissionDenied, ValidationError) as exc:
        if isinstance(exc, ValidationError) and cell.environment.is_production:
            error = " ".join(exc.messages)
            return _restore_confirmation(request, cell, row, data["version"], error=error)
        notice, status = _refusal_notice(exc)
        return _action_answer(request, notice, status=status, default_back=detail_url)
    notice = Notice(
        "ok",
        f"Restored {key} in {cell.environment.name}",
        f"now {state_summary(services.state_value(state))} (version {state.version})",
    )
    return _action_answer(request, notice, changed=True, default_back=detail_url)


# --- Kill switches ---------------------------------------------------------------------------


@require_POST
def kill_switch_engage(request: HttpRequest) -> HttpResponse:
    board_url = reverse("flags:board")
    form = KillSwitchEngageForm(request.POST)
    if not form.is_valid():
        problems = "; ".join(f"{name}: {' '.join(e)}" for name, e in form.errors.items())
        notice = Notice("error", "Kill switch not engaged", problems)
        return _action_answer(request, notice, status=400, default_back=board_url)
    data = form.cleaned_data
    try:
        result = services.kill_switch_engage(
            actor=request.user,
            environment=data["environment"],
            scope=data["scope"],
            flag=data["flag"],
            tag=data["tag"],
            reason=data["reason"],
        )
    except (PermissionDenied, ValidationError) as exc:
        notice, status = _refusal_notice(exc)
        return _action_answer(request, notice, status=status, default_back=board_url)
    switch = result.switch
    if result.already_engaged:
        text = f"already engaged by {switch.engaged_by.username}: nothing changed"
    else:
        count = len(result.turned_off)
        text = f"{count} flag{'' if count == 1 else 's'} turned off"
    notice = Notice(
        "ok", f"Kill switch engaged in {switch.environment.name} ({switch.subject})", text
    )
    return _action_answer(request, notice, changed=True, default_back=board_url)


@require_POST
def kill_switch_release(request: HttpRequest, pk: int) -> HttpResponse:
    board_url = reverse("flags:board")
    switch = get_object_or_404(
        KillSwitch.objects.select_related("environment", "flag", "tag", "engaged_by"), pk=pk
    )
    form = KillSwitchReleaseForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    try:
        switch = services.kill_switch_release(actor=request.user, switch=switch, reason=reason)
    except (PermissionDenied, ValidationError) as exc:
        notice, status = _refusal_notice(exc)
        return _action_answer(request, notice, status=status, default_back=board_url)
    notice = Notice(
        "ok",
        f"Kill switch released in {switch.environment.name} ({switch.subject})",
        "nothing was turned back on: restore states one by one from each flag's history",
    )
    return _action_answer(request, notice, changed=True, default_back=board_url)
