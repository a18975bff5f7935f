"""The approvals pages (HTMX): the inbox, a request's page with its checkpoint (go / adjust /
no-go), checklist, preview, decisions, revisions and history, and execution.

Each mutation parses a form, calls one service and answers with the request's page part
(htmx) or a redirect (plain form). Refusals come back in place with the service's reason:
400 bad input, 403 refused (already audited as denied), 409 conflict.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from releasecontrol import selectors as core_selectors
from releasecontrol.audit.selectors import AuditFilter, audit_events
from releasecontrol.errors import Conflict
from releasecontrol.policy import decide

from . import actions, selectors
from .decisions import approval_decide, valid_gos
from .execution import approval_execute, post_review_close
from .forms import ChecklistItemForm, DecisionForm, ExecuteForm, InboxFilterForm, PostReviewForm
from .models import ApprovalRequest, ChecklistItem, PostReview, Status
from .presenters import (
    Notice,
    awaiting_count,
    blackout_note,
    checklist_progress,
    checklist_refusal,
    decide_environment_ids,
    decision_choices,
    execute_choice,
    history_rows,
    preview_items,
    refusal_notice,
    revision_rows,
)
from .services import checklist_item_set

INBOX = "approvals/inbox.html"
DETAIL = "approvals/detail.html"
PAGE_SIZE = 25
HISTORY_LIMIT = 200
CHANGED_EVENT = "approval-changed"


def wants_partial(request: HttpRequest) -> bool:
    return bool(request.htmx) and not request.htmx.history_restore_request


def _form_errors(form: Any) -> str:
    return "; ".join(f"{name}: {' '.join(errors)}" for name, errors in form.errors.items())


# --- The nav badge --------------------------------------------------------------------------


@never_cache
@require_GET
def badge(request: HttpRequest) -> HttpResponse:
    """The count awaiting the signed-in person, loaded by every page's nav after it renders
    (so no page pays for it in its own queries): one query."""
    return render(request, "approvals/_badge.html", {"count": awaiting_count(request)})


# --- Inbox ----------------------------------------------------------------------------------


@require_GET
def inbox(request: HttpRequest) -> HttpResponse:
    form = InboxFilterForm(request.GET)
    status = 200
    if form.is_valid():
        data = form.cleaned_data
    else:
        status, data = 400, {}
    ids = decide_environment_ids(request.user)
    view = data.get("view") or ("awaiting" if ids else "mine")
    environment = data.get("environment") or ""
    chosen_status = data.get("status") or ""
    counts = selectors.approval_inbox_counts(
        request.user, decide_environment_ids=ids, environment=environment or None
    )
    rows, next_before = selectors.approval_inbox_page(
        request.user,
        view=view,
        decide_environment_ids=ids,
        environment=environment or None,
        status=chosen_status or None,
        before=data.get("before"),
        size=PAGE_SIZE,
    )
    filters = {k: v for k, v in (("environment", environment), ("status", chosen_status)) if v}
    context = {
        "form": form,
        "errors": _form_errors(form) if status == 400 else "",
        "view": view,
        "views": [
            (name, label, counts[name])
            for name, label in (
                ("awaiting", "Awaiting my decision"),
                ("mine", "Mine"),
                ("approved", "Approved, awaiting execution"),
                ("decided", "Decided"),
                ("expired", "Expired"),
                ("post_reviews", "Post-reviews due"),
                ("all", "All"),
            )
        ],
        "filters_query": urlencode(filters),
        "next_query": urlencode({**filters, "view": view, "before": next_before})
        if next_before
        else "",
        "environment": environment,
        "chosen_status": chosen_status,
        "statuses": Status.choices,
        "environments": list(core_selectors.environment_list()),
        "rows": rows,
        "may_decide_anywhere": bool(ids),
    }
    template = INBOX + ("#results" if wants_partial(request) else "")
    return render(request, template, context, status=status)


# --- A request's page -----------------------------------------------------------------------


def _approval(pk: int) -> ApprovalRequest:
    try:
        return selectors.approval_request_detail(pk)
    except ApprovalRequest.DoesNotExist:
        raise Http404(f"There is no approval request #{pk}.") from None


def _post_review(approval: ApprovalRequest) -> PostReview | None:
    try:
        return approval.post_review
    except PostReview.DoesNotExist:
        return None


def _detail_context(
    request: HttpRequest,
    approval: ApprovalRequest,
    *,
    notice: Notice | None = None,
    open_confirm: str = "",
    typed: dict[str, str] | None = None,
) -> dict[str, Any]:
    user, now = request.user, timezone.now()
    items = preview_items(approval.preview)
    checklist = list(approval.checklist.all())
    events = list(
        audit_events(AuditFilter(target_type="approvalrequest", target_id=str(approval.pk)))[
            :HISTORY_LIMIT
        ]
    )
    review = _post_review(approval)
    decisions = sorted(approval.decisions.all(), key=lambda d: d.pk)
    choices = decision_choices(user, approval, items, now=now)
    whys = {choice.why for choice in choices}
    return {
        "approval": approval,
        "environment": approval.environment,
        "items": items,
        "checklist": checklist,
        "progress": checklist_progress(checklist),
        "checklist_refusal": checklist_refusal(user, approval, now=now),
        "choices": choices,
        # One sentence when the same reason holds every decision back (the requester's own).
        "decide_blocked": whys.pop() if len(whys) == 1 and not choices[0].allowed else "",
        "execute": execute_choice(user, approval, items, now=now),
        "decisions": decisions,
        "valid_gos": len(valid_gos(approval)),
        "revisions": revision_rows(events),
        "history": history_rows(events),
        "blackout": blackout_note(approval, now=now),
        "review": review,
        "may_close_review": bool(review and review.is_open)
        and decide(user, actions.POST_REVIEW_CLOSE, approval.environment).allowed,
        "notice": notice,
        "open_confirm": open_confirm,
        "typed": typed or {},
        "is_requester": approval.requested_by_id == user.pk,
        "is_editor": any(e.pk == user.pk for e in approval.editors.all()),
    }


@require_GET
def detail(request: HttpRequest, pk: int) -> HttpResponse:
    approval = _approval(pk)
    template = DETAIL + ("#detail" if wants_partial(request) else "")
    return render(request, template, _detail_context(request, approval))


def _answer(
    request: HttpRequest,
    pk: int,
    *,
    notice: Notice,
    status: int = 200,
    open_confirm: str = "",
    typed: dict[str, str] | None = None,
) -> HttpResponse:
    """The request's page after an action: its part with the notice (htmx), a redirect with
    a message (a plain form that worked), or the whole page with the notice."""
    if status == 200 and not wants_partial(request):
        messages.success(request, f"{notice.title} {notice.text}".strip())
        return HttpResponseRedirect(reverse("approvals:detail", args=[pk]), status=303)
    approval = _approval(pk)
    context = _detail_context(
        request, approval, notice=notice, open_confirm=open_confirm, typed=typed
    )
    template = DETAIL + ("#detail" if wants_partial(request) else "")
    response = render(request, template, context, status=status)
    if wants_partial(request):
        response["HX-Trigger"] = json.dumps(
            {CHANGED_EVENT: {"message": f"{notice.title} {notice.text}".strip(), "request": pk}}
        )
    return response


@require_POST
def decision_make(request: HttpRequest, pk: int) -> HttpResponse:
    approval = _approval(pk)
    form = DecisionForm(request.POST)
    typed = {"comment": request.POST.get("comment", "")[:2000]}
    if not form.is_valid():
        return _answer(
            request,
            pk,
            notice=Notice("error", "Check the form", _form_errors(form)),
            status=400,
            open_confirm=request.POST.get("decision", "")[:10],
            typed=typed,
        )
    data = form.cleaned_data
    try:
        approval = approval_decide(
            actor=request.user,
            request=approval,
            decision=data["decision"],
            preview_hash=data["preview_hash"],
            comment=data["comment"],
        )
    except (PermissionDenied, Conflict, ValidationError) as exc:
        notice, status = refusal_notice(exc)
        return _answer(
            request,
            pk,
            notice=notice,
            status=status,
            open_confirm=data["decision"] if status == 400 else "",
            typed=typed,
        )
    said = {"go": "Your go is recorded", "adjust": "Sent back", "no_go": "Rejected"}
    return _answer(
        request,
        pk,
        notice=Notice(
            "ok",
            f"{said[data['decision']]}: request #{pk} is {approval.get_status_display().lower()}.",
        ),
    )


@require_POST
def execute(request: HttpRequest, pk: int) -> HttpResponse:
    approval = _approval(pk)
    form = ExecuteForm(request.POST)
    if not form.is_valid():
        return _answer(
            request,
            pk,
            notice=Notice("error", "Check the form", "Say why this is executed now."),
            status=400,
            open_confirm="execute",
        )
    try:
        approval = approval_execute(
            actor=request.user, request=approval, reason=form.cleaned_data["reason"]
        )
    except (PermissionDenied, Conflict, ValidationError) as exc:
        notice, status = refusal_notice(exc)
        return _answer(
            request,
            pk,
            notice=notice,
            status=status,
            open_confirm="execute" if status == 400 else "",
        )
    return _answer(
        request,
        pk,
        notice=Notice(
            "ok", f"Executed request #{pk} in {approval.environment.name}.", approval.action
        ),
    )


@require_POST
def checklist_set(request: HttpRequest, pk: int, item: int) -> HttpResponse:
    found = ChecklistItem.objects.select_related("request__environment").filter(
        pk=item, request_id=pk
    )
    checklist_item = found.first()
    if checklist_item is None:
        raise Http404(f"Request #{pk} has no checklist item {item}.")
    form = ChecklistItemForm(request.POST)
    if not form.is_valid():
        return _answer(
            request,
            pk,
            notice=Notice("error", "Check the form", _form_errors(form)),
            status=400,
        )
    data = form.cleaned_data
    try:
        checklist_item = checklist_item_set(
            actor=request.user,
            item=checklist_item,
            checked=data["checked"],
            evidence=data["evidence"] if data["checked"] or data["evidence"] else None,
        )
    except (PermissionDenied, Conflict, ValidationError) as exc:
        notice, status = refusal_notice(exc)
        return _answer(request, pk, notice=notice, status=status)
    state = "Checked" if checklist_item.checked else "Unchecked"
    return _answer(
        request,
        pk,
        notice=Notice(
            "ok", f"{state} “{checklist_item.text}”.", "A new revision: earlier gos are void."
        ),
    )


@require_POST
def review_close(request: HttpRequest, pk: int) -> HttpResponse:
    approval = _approval(pk)
    review = _post_review(approval)
    if review is None:
        raise Http404(f"Request #{pk} has no post-review.")
    form = PostReviewForm(request.POST)
    if not form.is_valid():
        return _answer(
            request,
            pk,
            notice=Notice("error", "Check the form", "Write what the review found."),
            status=400,
        )
    try:
        post_review_close(actor=request.user, review=review, notes=form.cleaned_data["notes"])
    except (PermissionDenied, Conflict, ValidationError) as exc:
        notice, status = refusal_notice(exc)
        return _answer(request, pk, notice=notice, status=status)
    return _answer(request, pk, notice=Notice("ok", f"Closed the post-review of request #{pk}."))
