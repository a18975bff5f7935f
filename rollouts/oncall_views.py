"""The on-call page per environment (what is live, what the big button would turn off and stop,
the button itself, partial rollbacks) and a snapshot page per rollback (what it changed, and
Restore: a rollback.restore request to make).

Each view parses a form, calls one service and redirects (plain form) or answers a partial
(htmx). The typed environment name and the reason are asked in the browser
(static/js/oncall.js) and enforced here.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_POST

from flags.models import KillSwitchScope, Tag
from flags.services import kill_switch_engage
from releasecontrol.errors import Conflict
from releasecontrol.models import Environment
from releasecontrol.policy import decide

from . import actions, oncall_selectors
from .deployment_selectors import deployment_failures_recent
from .emergency import environment_rollback
from .models import Release
from .restore import REQUEST_ENDPOINT, snapshot_flags
from .services import release_rollback

PAGE = "rollouts/oncall.html"
SNAPSHOT = "rollouts/rollback_detail.html"


class RollbackForm(forms.Form):
    confirm = forms.CharField(max_length=100)
    reason = forms.CharField(max_length=2000, strip=False)

    def __init__(self, *args: Any, environment, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.environment = environment

    def clean_confirm(self) -> str:
        typed = self.cleaned_data["confirm"].strip().lower()
        if typed not in {self.environment.slug.lower(), self.environment.name.lower()}:
            raise ValidationError(f"Type {self.environment.slug} to confirm.")
        return typed

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise ValidationError("Say why: what is burning?")
        return reason


class PartialForm(forms.Form):
    SCOPES = [("flag", "One flag"), ("tag", "One tag"), ("release", "One release")]
    scope = forms.ChoiceField(choices=SCOPES)
    flag = forms.CharField(required=False, max_length=100)
    tag = forms.CharField(required=False, max_length=50)
    release = forms.IntegerField(required=False, min_value=1)
    reason = forms.CharField(max_length=2000)


def _may(request: HttpRequest, action, environment) -> bool:
    return decide(request.user, action, environment).allowed


@require_GET
def oncall_index(request: HttpRequest) -> HttpResponse:
    """The nav's link: the production environment's page (the last on the promotion path)."""
    environment = Environment.objects.order_by("-position").first()
    if environment is None:
        return HttpResponseRedirect(reverse("dashboard"))
    return HttpResponseRedirect(reverse("rollouts:oncall", args=[environment.slug]))


@require_GET
def oncall_page(request: HttpRequest, environment: str) -> HttpResponse:
    env = oncall_selectors.oncall_environment_get(environment)
    overview = oncall_selectors.oncall_overview(env)
    context = {
        "environment": env,
        "o": overview,
        "can_press": _may(request, actions.ENVIRONMENT_ROLLBACK, env),
        "form": RollbackForm(environment=env),
        # A failed deployment here puts the button in front of on-call (nothing is engaged
        # by the report itself).
        "deployment_failures": deployment_failures_recent(
            env, since=timezone.now() - dt.timedelta(hours=24)
        ),
    }
    template = PAGE + "#live" if request.htmx else PAGE
    return render(request, template, context)


def _refused(request: HttpRequest, env, exc: Exception) -> HttpResponse:
    if isinstance(exc, PermissionDenied):
        status, text = 403, f"{exc} The refusal is recorded in the audit trail."
    elif isinstance(exc, Conflict):
        status, text = 409, exc.detail
    else:
        assert isinstance(exc, ValidationError)
        status, text = 400, " ".join(exc.messages)
    context = {"environment": env, "error": text}
    return render(request, "rollouts/oncall_refused.html", context, status=status)


@require_POST
def oncall_rollback(request: HttpRequest, environment: str) -> HttpResponse:
    env = oncall_selectors.oncall_environment_get(environment)
    form = RollbackForm(request.POST, environment=env)
    if not form.is_valid():
        problems = [e for errors in form.errors.values() for e in errors]
        return _refused(request, env, ValidationError(problems))
    try:
        result = environment_rollback(
            actor=request.user, environment=env, reason=form.cleaned_data["reason"]
        )
    except (PermissionDenied, ValidationError) as exc:
        return _refused(request, env, exc)
    if result.already:
        messages.info(
            request,
            f"{env.name} was already rolled back (rollback {result.rollback_id}): nothing changed.",
        )
    else:
        messages.success(
            request,
            f"{env.name} rolled back: {len(result.turned_off)} flag(s) turned off, "
            f"{len(result.releases_stopped)} release(s) stopped.",
        )
    return HttpResponseRedirect(result.link, status=303)


@require_POST
def oncall_partial(request: HttpRequest, environment: str) -> HttpResponse:
    """One flag or one tag (a kill switch), or one release (a release rollback)."""
    env = oncall_selectors.oncall_environment_get(environment)
    form = PartialForm(request.POST)
    back = reverse("rollouts:oncall", args=[env.slug])
    if not form.is_valid():
        problems = [f"{name}: {' '.join(e)}" for name, e in form.errors.items()]
        return _refused(request, env, ValidationError(problems))
    data = form.cleaned_data
    try:
        text = _partial(request, env, data)
    except (Conflict, PermissionDenied, ValidationError) as exc:
        return _refused(request, env, exc)
    messages.success(request, text)
    return HttpResponseRedirect(back, status=303)


def _partial(request: HttpRequest, env, data: dict[str, Any]) -> str:
    scope, reason = data["scope"], data["reason"]
    if scope == "release":
        release = Release.objects.filter(pk=data["release"] or 0, environment=env).first()
        if release is None:
            raise ValidationError(f"No live release {data['release']} in {env.slug}.")
        release = release_rollback(actor=request.user, release=release, reason=reason)
        return f"Release {release} rolled back in {env.name}: its flags are off."
    if scope == "flag":
        flag = oncall_selectors.flag_for_switch(data["flag"].strip())
        if flag is None:
            raise ValidationError(f"No flag {data['flag']!r}.")
        result = kill_switch_engage(
            actor=request.user,
            environment=env,
            scope=KillSwitchScope.FLAG,
            flag=flag,
            reason=reason,
        )
        subject = flag.key
    else:
        tag = Tag.objects.filter(name=data["tag"].strip().lower()).first()
        if tag is None:
            raise ValidationError(f"No tag {data['tag']!r}.")
        result = kill_switch_engage(
            actor=request.user, environment=env, scope=KillSwitchScope.TAG, tag=tag, reason=reason
        )
        subject = f"tag {tag.name}"
    if result.already_engaged:
        return f"A kill switch on {subject} was already engaged in {env.name}: nothing changed."
    return (
        f"Kill switch engaged on {subject} in {env.name}: "
        f"{len(result.turned_off)} flag state(s) turned off."
    )


@require_GET
def rollback_detail(request: HttpRequest, pk: int) -> HttpResponse:
    rollback = oncall_selectors.rollback_get(pk)
    env = rollback.environment
    switch = rollback.kill_switch
    context = {
        "environment": env,
        "rollback": rollback,
        "flags": rollback.flag_states,
        "releases": rollback.snapshot.get("releases", []),
        "engaged": switch is not None and switch.released_at is None,
        "can_request": not rollback.restored_at,
        "request_endpoint": REQUEST_ENDPOINT,
    }
    return render(request, SNAPSHOT, context)


@require_POST
def rollback_restore_request(request: HttpRequest, pk: int) -> HttpResponse:
    """Restore -> the approval request page, prefilled with the chosen snapshot items."""
    rollback = oncall_selectors.rollback_get(pk)
    chosen = sorted(set(request.POST.getlist("flags")) & snapshot_flags(rollback).keys())
    query = {
        "action": actions.ROLLBACK_RESTORE.name,
        "environment": rollback.environment.slug,
        "parameters": json.dumps(
            {"rollback": rollback.pk, "flags": chosen}, sort_keys=True, separators=(",", ":")
        ),
    }
    return HttpResponseRedirect(
        reverse("approval_request_new") + "?" + urlencode(query), status=303
    )
