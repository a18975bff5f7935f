"""The flag board (HTMX) and flag pages.

Each view parses a form, calls one service and answers with a partial (htmx) or a
redirect / full page (plain forms). Service refusals map to inline answers: 400 bad
input, 403 policy (already audited as denied), 409 stale edit / kill switch / blackout, and
409 approval required (audited as denied too) with a link to request approval.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from releasecontrol import selectors as core_selectors
from releasecontrol.errors import Conflict
from releasecontrol.policy import decide

from . import actions, selectors, services
from .forms import FlagCreateForm, FlagStateForm
from .models import Mode
from .presenters import (
    Cell,
    Editor,
    EnvironmentRow,
    Notice,
    approval_notice,
    cell_for,
    cells_of,
    columns_for,
    conflict_notice,
    describe_change,
    history_row,
    kill_switch_notice,
    read_only_notice,
    request_approval_url,
    request_notice,
    state_summary,
    value_text,
)
from .rules import StateValue, reduces_exposure

PAGE_SIZE = 50
BOARD = "flags/board.html"
DETAIL = "flags/flag_detail.html"


def wants_partial(request: HttpRequest) -> bool:
    return bool(request.htmx) and not request.htmx.history_restore_request


def back_url(request: HttpRequest, default: str) -> str:
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
    if wants_partial(request) and request.GET.get("known") == fingerprint:
        return HttpResponse(status=204)  # nothing changed: htmx leaves the grid (and editors) alone
    page = Paginator(selectors.flag_list(search=search, tag=tag), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    cover = selectors.kill_switch_cover()
    columns = columns_for(request.user, cover)
    operate = {col.environment.pk: col.can_operate for col in columns}
    filters = {k: v for k, v in (("q", search), ("tag", tag)) if v}
    board_url = reverse("flags:board")
    context = {
        "columns": columns,
        "rows": [(flag, cells_of(flag, columns, cover)) for flag in page],
        "page": page,
        "page_range": page.paginator.get_elided_page_range(page.number, on_each_side=2),
        "page_query": urlencode(filters) + "&" if filters else "",
        "poll_url": board_url
        + "?"
        + urlencode({**filters, "page": page.number, "known": fingerprint}),
        "search": search,
        "tag": tag,
        "tags": list(selectors.tag_list()),
        "engaged": [(s, operate.get(s.environment_id, False)) for s in cover.switches],
        "can_operate_any": any(operate.values()),
        "back_url": request.get_full_path() if not request.htmx else back_url(request, board_url),
    }
    return render(request, BOARD + ("#board" if wants_partial(request) else ""), context)


# --- Editing a cell -------------------------------------------------------------------------


def _render_cell(
    request: HttpRequest,
    cell: Cell,
    *,
    editor: Editor | None = None,
    status: int = 200,
    just_saved: bool = False,
    notice: Notice | None = None,
    accept: dict[str, Any] | None = None,
) -> HttpResponse:
    context = {
        "cell": cell,
        "editor": editor,
        "just_saved": just_saved,
        "cell_notice": notice,
        "accept": accept,
        "modes": Mode.choices,
        "inline": wants_partial(request),
        "back_url": back_url(request, reverse("flags:board")),
    }
    template = BOARD + "#cell" if wants_partial(request) else "flags/state_edit.html"
    return render(request, template, context, status=status)


@require_GET
def state_cell(request: HttpRequest, key: str, environment: str) -> HttpResponse:
    """The cell as it is now (the editor's Cancel)."""
    if not wants_partial(request):
        return redirect("flags:detail", key=key)
    return _render_cell(request, cell_for(request.user, key, environment))


@require_GET
def state_edit(request: HttpRequest, key: str, environment: str) -> HttpResponse:
    cell = cell_for(request.user, key, environment)
    if cell.offers_request and (not cell.can_change or request.GET.get("purpose") == "request"):
        # The same editor, whose change becomes an approval request instead.
        editor = Editor.of_state(cell)
        editor.purpose, editor.notice = "request", request_notice(cell)
        return _render_cell(request, cell, editor=editor)
    if not cell.can_change:
        # Said before anything is typed: no editor, no review, no reason to write for nothing.
        return _render_cell(request, cell, notice=read_only_notice(cell))
    editor = Editor.of_state(cell)
    if cell.kill_switch is not None:
        editor.notice = kill_switch_notice(cell.kill_switch)
    return _render_cell(request, cell, editor=editor)


@require_GET
def state_request(request: HttpRequest, key: str, environment: str) -> HttpResponse:
    """The request editor's submit: on to the page that asks for approval of this change."""
    cell = cell_for(request.user, key, environment)
    if not cell.column.can_request:
        raise PermissionDenied(f"Refused: you may not request changes in {cell.environment.slug}.")
    form = FlagStateForm(request.GET)
    if not form.is_valid():
        editor = Editor.of_post(request.GET, cell.version)
        editor.purpose, editor.notice = "request", request_notice(cell)
        editor.errors = {name: list(errors) for name, errors in form.errors.items()}
        return _render_cell(request, cell, editor=editor, status=400)
    data = form.cleaned_data
    parameters = {
        "flag": cell.flag.key,
        "mode": data["mode"],
        "percentage": cell.value.percentage if data["percentage"] is None else data["percentage"],
        "allowlist": data["allowlist"],
    }
    url = request_approval_url(actions.FLAG_STATE_SET.name, cell.environment, parameters)
    return HttpResponseRedirect(url)


@require_POST
def state_set(request: HttpRequest, key: str, environment: str) -> HttpResponse:
    cell = cell_for(request.user, key, environment)
    form = FlagStateForm(request.POST)
    if not form.is_valid():
        editor = Editor.of_post(request.POST, cell.version)
        editor.errors = {name: list(errors) for name, errors in form.errors.items()}
        return _render_cell(request, cell, editor=editor, status=400)
    data = form.cleaned_data
    editor = Editor.of_post(request.POST, data["version"])
    if request.POST.get("back"):
        return _render_cell(request, cell, editor=editor)
    # Someone who may not change flags here goes straight to the (audited) refusal.
    if cell.environment.is_production and not data["confirmed"] and cell.can_change:
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
    fresh = cell_for(request.user, key, environment)
    summary = state_summary(services.state_value(state))
    message = f"{key} in {fresh.environment.name}: {summary} (version {state.version})."
    if not wants_partial(request):
        messages.success(request, f"Saved. {message}")
        return HttpResponseRedirect(back_url(request, reverse("flags:board")), status=303)
    response = _render_cell(request, fresh, just_saved=True)
    return _cell_changed(response, key, environment, state.version, message)


def _cell_changed(response: HttpResponse, key: str, environment: str, version: int, message: str):
    response["HX-Trigger"] = json.dumps(
        {
            "flag-state-changed": {
                "flag": key,
                "environment": environment,
                "version": version,
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
        editor.notice = conflict_notice(cell, "Someone else changed this while you were editing")
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
    cell = cell_for(request.user, key, environment)
    status = 409
    if isinstance(exc, services.StaleEdit):
        editor.version = cell.version  # saving again is a deliberate overwrite
        editor.notice = conflict_notice(cell, "Someone else changed this while you were editing")
    elif isinstance(exc, services.ApprovalRequired):
        editor.notice = approval_notice(exc)  # recorded as denied; the way on is a request
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


@require_GET
def flag_detail(request: HttpRequest, key: str) -> HttpResponse:
    flag = selectors.flag_get(key)
    tab = "history" if request.GET.get("tab") == "history" else "state"
    fingerprint = selectors.flags_fingerprint()
    if wants_partial(request) and request.GET.get("known") == fingerprint:
        return HttpResponse(status=204)
    cover = selectors.kill_switch_cover()
    columns = columns_for(request.user, cover)
    cells = cells_of(flag, columns, cover)
    context: dict[str, Any] = {
        "flag": flag,
        "tab": tab,
        "columns": columns,
        "back_url": reverse("flags:detail", args=[flag.key]),
        "fingerprint": fingerprint,
        "on_value": value_text(flag.on_value),
        "off_value": value_text(flag.off_value),
    }
    if tab == "state":
        context["rows"] = [
            EnvironmentRow(
                cell,
                col,
                cover.for_flag(flag, col.environment),
                [(t, cover.for_tag(t, col.environment)) for t in flag.tags.all()],
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
    return render(request, DETAIL + ("#tab" if wants_partial(request) else ""), context)
