"""The controls' forms on a release's page: start, advance, pause, resume, roll back.

Each parses the reason, calls the release service, and answers with the page's live part
(htmx) or a redirect (plain form). Refusals come back in place with the service's sentence:
400 without a reason, 403 refused by the policy (already audited as denied), 409 when the
release's state does not allow it or it needs an approved request (with the link to ask).
"""

from __future__ import annotations

import json

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from flags.guards import ApprovalRequired
from flags.presenters import request_url_of
from releasecontrol.errors import Conflict

from . import page_selectors as reads
from . import selectors
from .controls import STEPS
from .forms import ControlForm
from .views import DETAIL, evaluations_context, live_context, wants_partial

CHANGED_EVENT = "release-changed"


def _notice(kind: str, title: str, text: str, link_url: str = "", link_text: str = "") -> dict:
    return {
        "kind": kind,
        "title": title,
        "text": text,
        "link_url": link_url,
        "link_text": link_text,
    }


def _answer(request: HttpRequest, pk: int, notice: dict, status: int) -> HttpResponse:
    """The live part of the page as it is now, with the notice above the controls."""
    state = reads.release_fingerprint(pk)
    if state is None:
        raise Http404(f"No release {pk}")
    if state[0] not in reads.viewable_environment_ids(request.user):
        raise PermissionDenied(notice["text"] if status == 403 else "Refused.")
    release = reads.release_get_for_user(request.user, pk, environment_ids={state[0]})
    context = live_context(request, release, state[1])
    context["control_notice"] = notice
    if wants_partial(request):
        response = render(request, DETAIL + "#live", context, status=status)
    else:
        context.update(evaluations_context(release, 1, state[1]))
        response = render(request, DETAIL, context, status=status)
    return response


@require_POST
def release_control(request: HttpRequest, pk: int, step: str) -> HttpResponse:
    control = STEPS.get(step)
    if control is None:
        raise Http404(f"No control {step!r}")
    release = selectors.release_get(pk)
    form = ControlForm(request.POST)
    if not form.is_valid():
        text = "Say why (the reason goes to the audit trail and the release's timeline)."
        return _answer(request, pk, _notice("error", f"{control.label}: no reason", text), 400)
    reason = form.cleaned_data["reason"]
    try:
        control.service(actor=request.user, release=release, reason=reason)
    except ApprovalRequired as exc:
        url = request_url_of(exc.context["request"]) if exc.context.get("request") else ""
        notice = _notice(
            "conflict", f"{control.label}: needs approval", exc.detail, url, "Request approval"
        )
        return _answer(request, pk, notice, 409)
    except Conflict as exc:
        return _answer(
            request, pk, _notice("conflict", f"{control.label}: not now", exc.detail), 409
        )
    except PermissionDenied as exc:
        return _answer(request, pk, _notice("refused", f"{control.label}: refused", str(exc)), 403)
    except ValidationError as exc:
        text = " ".join(exc.messages)
        return _answer(request, pk, _notice("error", f"{control.label}: refused", text), 400)
    done = f"{control.label}: done. “{reason}”"
    if not wants_partial(request):
        messages.success(request, done)
        return HttpResponseRedirect(reverse("rollouts:detail", args=[pk]), status=303)
    response = _answer(request, pk, _notice("ok", done, ""), 200)
    response["HX-Trigger"] = json.dumps({CHANGED_EVENT: {"release": pk, "step": step}})
    return response
