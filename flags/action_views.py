"""The flag pages' actions that answer with a notice: restoring a state from the history (by
audit event id, as the API does) and engaging or releasing kill switches."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from releasecontrol.errors import Conflict

from . import selectors, services
from .forms import KillSwitchEngageForm, KillSwitchReleaseForm, StateRestoreForm
from .models import KillSwitch, KillSwitchScope
from .presenters import (
    Cell,
    HistoryRow,
    Notice,
    cell_for,
    describe_change,
    history_row,
    refusal_notice,
    state_of,
    state_summary,
)
from .rules import reduces_exposure
from .views import BOARD, DETAIL, back_url, wants_partial


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
    back = back_url(request, default_back)
    context = {
        "notice": notice,
        "back_url": back,
        "inline": wants_partial(request),
        **(extra or {}),
    }
    if not wants_partial(request):
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


def _restorable_row(cell: Cell, event_id: int, side: str) -> HistoryRow | str:
    """The history row of the event with the state to restore, or why there is none. Any
    event of the trail, however old (the history page shows the latest only)."""
    event = selectors.audit_event_find(event_id)
    if event is None:
        return f"No audit event {event_id}."
    try:
        state = selectors.restorable_state(event, cell.flag, cell.environment, side)
    except selectors.NotRestorable as why:
        return str(why)
    row = history_row(event, cell.flag)
    row.restore_to = state_of(state)
    if side == "before" and event.action in selectors.STATE_CHANGE_ACTIONS:
        row.restore_label = "Restore the state before"
    return row


@require_POST
def state_restore(request: HttpRequest, key: str, environment: str) -> HttpResponse:
    cell = cell_for(request.user, key, environment)
    detail_url = reverse("flags:detail", args=[key]) + "?tab=history"
    form = StateRestoreForm(request.POST)
    if not form.is_valid():
        notice = Notice("error", "Bad request", "Restore needs an event and the current version.")
        return _action_answer(request, notice, status=400, default_back=detail_url)
    data = form.cleaned_data
    row = _restorable_row(cell, data["event"], data["side"])
    if isinstance(row, str):
        return _action_answer(
            request, Notice("error", "Nothing to restore", row), status=404, default_back=detail_url
        )
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
        notice, status = refusal_notice(exc)
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
    if data["scope"] == KillSwitchScope.ENVIRONMENT:
        return _environment_rollback(request, data["environment"], data["reason"], board_url)
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
        notice, status = refusal_notice(exc)
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


def _environment_rollback(request: HttpRequest, environment, reason: str, board_url: str):
    """The board's environment kill switch is the environment rollback (flags/holds.py): every
    flag off and every live release stopped, one snapshot to restore from."""
    try:
        result = services.environment_rollback(
            actor=request.user, environment=environment, reason=reason
        )
    except (PermissionDenied, ValidationError) as exc:
        notice, status = refusal_notice(exc)
        return _action_answer(request, notice, status=status, default_back=board_url)
    if result.already:
        text = f"already rolled back (rollback {result.rollback_id}): nothing changed"
    else:
        flags, releases = len(result.turned_off), len(result.releases_stopped)
        text = (
            f"rollback {result.rollback_id}: {flags} flag{'' if flags == 1 else 's'} turned "
            f"off, {releases} release{'' if releases == 1 else 's'} stopped"
        )
    notice = Notice(
        "ok",
        f"{environment.name} rolled back",
        text,
        link_url=result.link,
        link_label="Snapshot and restore",
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
    except (Conflict, PermissionDenied, ValidationError) as exc:
        notice, status = refusal_notice(exc)
        return _action_answer(request, notice, status=status, default_back=board_url)
    notice = Notice(
        "ok",
        f"Kill switch released in {switch.environment.name} ({switch.subject})",
        "nothing was turned back on: restore states one by one from each flag's history",
    )
    return _action_answer(request, notice, changed=True, default_back=board_url)
