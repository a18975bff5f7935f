"""Asking for a go from a page: the change comes prefilled in the query string (the flag
board's "Request approval" links here), the page shows exactly what it would change, and the
person adds what deciders read (title, urgency, risk, impact, mitigation, rollback plan,
windows) before approval_request_create.

`?action=flag.state.set&environment=production&parameters={"flag": ..., ...}` (JSON).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_http_methods

from releasecontrol import requestable
from releasecontrol.models import Environment, User
from releasecontrol.policy import decide

from . import actions
from .checklists import approval_settings_for
from .models import ChecklistTemplate, Risk, Urgency
from .services import NO_CHECKLIST, approval_request_create

TEMPLATE = "approvals/request_new.html"


def _when(label: str) -> forms.DateTimeField:
    return forms.DateTimeField(
        label=label,
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text=f"{settings.TIME_ZONE}; leave empty for no window",
    )


class RequestForm(forms.Form):
    title = forms.CharField(max_length=200)
    urgency = forms.ChoiceField(choices=Urgency.choices, initial=Urgency.ROUTINE)
    risk = forms.ChoiceField(choices=Risk.choices, initial=Risk.MEDIUM)
    impact = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    mitigation = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    rollback_plan = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    window_start = _when("Preferred window: start")
    window_end = _when("Preferred window: end")
    alternative_window_start = _when("Alternative window: start")
    alternative_window_end = _when("Alternative window: end")
    checklist = forms.ChoiceField(required=False)

    def __init__(self, *args: Any, environment: Environment, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        approval_settings = approval_settings_for(environment)
        default = approval_settings.default_checklist
        choices = [("", f"{default.name} (the default here)" if default else "The default")]
        choices += [(t.slug, t.name) for t in ChecklistTemplate.objects.order_by("name")]
        if approval_settings.checklist_optional:
            choices.append((NO_CHECKLIST, "No checklist"))
        self.fields["checklist"].choices = choices


@dataclass(frozen=True)
class Target:
    """The change asked for, cleaned, and what executing it would change now."""

    action: str
    environment: Environment
    parameters: dict[str, Any]
    preview: dict[str, Any]

    @property
    def parameters_json(self) -> str:
        return json.dumps(self.parameters, sort_keys=True, separators=(",", ":"))


class BadTarget(Exception):
    pass


def _messages(error: ValidationError) -> str:
    if hasattr(error, "error_dict"):
        return "; ".join(f"{f}: {' '.join(m)}" for f, m in error.message_dict.items())
    return " ".join(error.messages)


def _target(data: QueryDict) -> Target:
    action = data.get("action", "")
    environment = Environment.objects.filter(slug=data.get("environment", "")).first()
    if environment is None:
        raise BadTarget(f"There is no environment {data.get('environment', '')!r}.")
    try:
        raw = json.loads(data.get("parameters") or "{}")
    except ValueError:
        raise BadTarget("The parameters are not valid JSON.") from None
    try:
        parameters = requestable.parameters_clean(action, raw)
        preview = requestable.preview_compute(action, environment, parameters)
    except ValidationError as error:
        raise BadTarget(_messages(error)) from None
    return Target(action, environment, parameters, preview)


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def preview_rows(preview: dict[str, Any]) -> list[dict[str, Any]]:
    """Each affected item, field by field: before, after, and whether it changes."""
    rows = []
    for item in preview.get("items", []):
        before, after = item.get("before") or {}, item.get("after") or {}
        fields = [
            {
                "name": name,
                "before": _show(before.get(name)) if name in before else "",
                "after": _show(after.get(name)) if name in after else "",
                "changes": name in after and before.get(name) != after.get(name),
            }
            for name in list(before) + [n for n in after if n not in before]
        ]
        rows.append({"name": item.get("name") or item["id"], "fields": fields})
    return rows


def suggested_title(preview: dict[str, Any]) -> str:
    parts = []
    for item in preview.get("items", []):
        before, after = item.get("before") or {}, item.get("after") or {}
        changes = [
            f"{name} {_show(value)}"
            for name, value in after.items()
            if name != "version" and before.get(name) != value
        ]
        parts.append(f"{item.get('name') or item['id']}: {', '.join(changes) or 'no change'}")
    return "; ".join(parts)[:200]


def _detail_url(pk: int) -> str | None:
    try:
        return reverse("approvals:detail", args=[pk])
    except NoReverseMatch:
        return None


def _page(request: HttpRequest, target: Target, form: RequestForm, status: int = 200):
    context = {
        "target": target,
        "environment": target.environment,
        "rows": preview_rows(target.preview),
        "form": form,
    }
    return render(request, TEMPLATE, context, status=status)


def _may_ask_somewhere(user: User) -> bool:
    return any(
        decide(user, actions.APPROVAL_REQUEST_CREATE, environment).allowed
        for environment in Environment.objects.all()
    )


@require_http_methods(["GET", "POST"])
def approval_request_new(request: HttpRequest) -> HttpResponse:
    data = request.POST if request.method == "POST" else request.GET
    try:
        target = _target(data)
    except BadTarget as error:
        if not _may_ask_somewhere(request.user):
            raise PermissionDenied("Refused: your roles do not let you request changes.") from None
        return render(request, TEMPLATE, {"bad_target": str(error)}, status=400)
    if request.method == "GET":
        allowed = decide(request.user, actions.APPROVAL_REQUEST_CREATE, target.environment)
        if not allowed.allowed:
            raise PermissionDenied(f"Refused: {allowed.why}.")
        form = RequestForm(
            environment=target.environment, initial={"title": suggested_title(target.preview)}
        )
        return _page(request, target, form)
    form = RequestForm(request.POST, environment=target.environment)
    if not form.is_valid():
        return _page(request, target, form, status=400)
    values = {name: form.cleaned_data[name] for name in form.fields}
    values["checklist"] = values["checklist"] or None
    try:
        created = approval_request_create(
            actor=request.user,
            environment=target.environment,
            action=target.action,
            parameters=target.parameters,
            **values,
        )
    except ValidationError as error:
        for name, messages in getattr(error, "message_dict", {"__all__": error.messages}).items():
            field = name if name in form.fields else None
            if name in ("window", "alternative_window"):
                field = f"{name}_start"
            form.add_error(field, messages)
        return _page(request, target, form, status=400)
    url = _detail_url(created.pk)
    if url is not None:
        return HttpResponseRedirect(url, status=303)
    context = {"created": created, "environment": target.environment, "target": target}
    return render(request, TEMPLATE, context)
