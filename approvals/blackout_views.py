"""Blackout windows per environment: the list, and (for release managers) creating one-off
or weekly windows and deleting them, through the services."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from releasecontrol import selectors as core_selectors
from releasecontrol.errors import Conflict
from releasecontrol.models import Environment
from releasecontrol.policy import decide

from . import actions, selectors
from .blackouts import blackout_window_create, blackout_window_delete, window_contains
from .forms import DAY_CHOICES, BlackoutDeleteForm, BlackoutForm
from .models import BlackoutKind, BlackoutWindow
from .presenters import Notice, refusal_notice
from .views import wants_partial

PAGE = "approvals/blackouts.html"


def _render(
    request: HttpRequest,
    environment: Environment,
    *,
    form: BlackoutForm | None = None,
    notice: Notice | None = None,
    status: int = 200,
) -> HttpResponse:
    now = timezone.now()
    windows = list(selectors.blackout_windows(environment=environment.slug))
    context: dict[str, Any] = {
        "environment": environment,
        "environments": list(core_selectors.environment_list()),
        "windows": [(w, window_contains(w, now)) for w in windows],
        "may_create": decide(request.user, actions.BLACKOUT_CREATE, environment).allowed,
        "may_delete": decide(request.user, actions.BLACKOUT_DELETE, environment).allowed,
        "form": form or BlackoutForm(initial={"kind": BlackoutKind.WEEKLY, "time_zone": "UTC"}),
        "kinds": BlackoutKind.choices,
        "days": DAY_CHOICES,
        "notice": notice,
    }
    template = PAGE + ("#windows" if wants_partial(request) else "")
    return render(request, template, context, status=status)


def _done(request: HttpRequest, environment: Environment, notice: Notice) -> HttpResponse:
    if wants_partial(request):
        return _render(request, environment, notice=notice)
    messages.success(request, notice.title)
    return HttpResponseRedirect(reverse("approvals:blackouts", args=[environment.slug]), status=303)


@require_GET
def blackouts(request: HttpRequest, slug: str) -> HttpResponse:
    return _render(request, core_selectors.environment_get(slug))


@require_POST
def blackout_create(request: HttpRequest, slug: str) -> HttpResponse:
    environment = core_selectors.environment_get(slug)
    form = BlackoutForm(request.POST)
    if not form.is_valid():
        notice = Notice("error", "Check the form", "")
        return _render(request, environment, form=form, notice=notice, status=400)
    try:
        window = blackout_window_create(
            actor=request.user, environment=environment, **form.service_kwargs()
        )
    except (PermissionDenied, Conflict, ValidationError) as exc:
        notice, status = refusal_notice(exc)
        return _render(request, environment, form=form, notice=notice, status=status)
    return _done(request, environment, Notice("ok", f"Blackout window added: {window}."))


@require_POST
def blackout_delete(request: HttpRequest, pk: int) -> HttpResponse:
    window = BlackoutWindow.objects.active().select_related("environment").filter(pk=pk).first()
    if window is None:
        raise Http404(f"There is no blackout window {pk}.")
    environment = window.environment
    form = BlackoutDeleteForm(request.POST)
    if not form.is_valid():
        notice = Notice("error", "Check the form", "Say why this window goes.")
        return _render(request, environment, notice=notice, status=400)
    try:
        blackout_window_delete(
            actor=request.user, window=window, reason=form.cleaned_data["reason"]
        )
    except (PermissionDenied, Conflict, ValidationError) as exc:
        notice, status = refusal_notice(exc)
        return _render(request, environment, notice=notice, status=status)
    return _done(request, environment, Notice("ok", f"Blackout window removed: {window}."))
