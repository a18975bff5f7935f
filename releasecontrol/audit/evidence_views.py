"""Evidence for auditors: chain verification (a Celery task, its progress polled by HTMX) and
incident audit packs (a zip download). Included by `releasecontrol/audit/urls.py` through
`evidence_urlpatterns` (namespace `audit`).

Who may: whoever may export the trail (auditors, release managers, superusers). Starting a
verification and building a pack are authorized again, and recorded, by their services.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import NoReverseMatch, path, reverse
from django.views.decorators.http import require_GET, require_http_methods

from ..models import AuditVerification, Environment
from ..policy import authorize, decide, get_action
from . import Target
from .packs import audit_pack_build, kill_switch_events, kill_switch_window
from .selectors import MAX_EVENT_ID, AuditFilter, event_id_or_none
from .verification import audit_verification_start

VERIFY = "audit/verify.html"
PACK = "audit/pack.html"
RECENT_VERIFICATIONS = 10


def _require_evidence_user(request: HttpRequest, *, action: str, what: str) -> None:
    """Auditors, release managers and superusers: whoever may export the whole trail.

    Reading a page is not an action (a plain 403); a refused POST is an attempt, recorded
    as a denied `audit.verify` or `audit.pack` like any other refusal.
    """
    user = request.user
    if user.is_authenticated and decide(user, get_action(action), None).allowed:
        return
    if request.method == "POST" and user.is_authenticated:
        authorize(user, action, None, target=Target("audit", "", what))
    raise PermissionDenied("Only auditors, release managers and administrators may do this.")


def event_url(event_id: int) -> str:
    """The explorer's page for one event."""
    try:
        return reverse("audit:event", args=[event_id])
    except NoReverseMatch:
        return f"/audit/events/{event_id}/"


def _wants_partial(request: HttpRequest) -> bool:
    return bool(request.htmx) and not request.htmx.history_restore_request


# --- Chain verification ----------------------------------------------------------------------


class VerifyForm(forms.Form):
    from_id = forms.IntegerField(
        required=False, min_value=1, max_value=MAX_EVENT_ID, label="From event #"
    )
    to_id = forms.IntegerField(
        required=False, min_value=1, max_value=MAX_EVENT_ID, label="To event #"
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        first, last = data.get("from_id"), data.get("to_id")
        if first is not None and last is not None and first > last:
            self.add_error("to_id", f"Must not be below the first id ({first}).")
        return data


def _verify_context(verification: AuditVerification | None) -> dict[str, Any]:
    broken_url = None
    if verification is not None and verification.first_broken_id is not None:
        broken_url = event_url(verification.first_broken_id)
    return {"verification": verification, "broken_url": broken_url}


def _verify_page(
    request: HttpRequest,
    verification: AuditVerification | None,
    form: VerifyForm | None = None,
    status: int = 200,
) -> HttpResponse:
    context = {
        **_verify_context(verification),
        "form": form or VerifyForm(),
        "recent": AuditVerification.objects.select_related("requested_by")[:RECENT_VERIFICATIONS],
    }
    return render(request, VERIFY, context, status=status)


@require_http_methods(["GET", "POST"])
def verify(request: HttpRequest) -> HttpResponse:
    """GET: the form and the latest verification. POST: start one (a Celery task)."""
    _require_evidence_user(request, action="audit.verify", what="audit chain")
    if request.method == "GET":
        return _verify_page(request, AuditVerification.objects.first())
    form = VerifyForm(request.POST)
    if not form.is_valid():
        return _verify_page(request, None, form, status=400)
    try:
        verification = audit_verification_start(
            actor=request.user,
            from_id=form.cleaned_data["from_id"],
            to_id=form.cleaned_data["to_id"],
        )
    except ValidationError as invalid:
        for field, messages in invalid.message_dict.items():
            form.add_error(field if field in form.fields else None, messages)
        return _verify_page(request, None, form, status=400)
    if _wants_partial(request):
        return render(request, VERIFY + "#progress", _verify_context(verification))
    return HttpResponseRedirect(reverse("audit:verification", args=[verification.pk]))


@require_GET
def verification(request: HttpRequest, verification_id: int) -> HttpResponse:
    """One verification: the whole page, or (polled by HTMX every second) its progress."""
    _require_evidence_user(request, action="audit.verify", what="audit chain")
    found = get_object_or_404(
        AuditVerification.objects.select_related("requested_by"), pk=verification_id
    )
    if _wants_partial(request):
        return render(request, VERIFY + "#progress", _verify_context(found))
    return _verify_page(request, found)


# --- Incident audit packs ---------------------------------------------------------------------


class PackForm(forms.Form):
    environment = forms.ChoiceField(required=False)
    since = forms.CharField(required=False, label="From (UTC)")
    until = forms.CharField(required=False, label="To (UTC)")
    kill_switch_event = forms.TypedChoiceField(
        required=False, coerce=int, empty_value=None, label="Kill-switch event"
    )
    window_minutes = forms.IntegerField(
        required=False, min_value=1, max_value=7 * 24 * 60, label="Minutes either side"
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["environment"].choices = [("", "—")] + [
            (e.slug, e.name) for e in Environment.objects.order_by("position")
        ]
        # The recent ones, and the one asked for (a link from an older event's page).
        events = list(kill_switch_events())
        asked = (self.data or self.initial).get("kill_switch_event")
        asked_id = event_id_or_none(asked) if asked else None
        if asked_id is not None and all(e.pk != asked_id for e in events):
            events += list(kill_switch_events(event_id=asked_id))
        self.fields["kill_switch_event"].choices = [("", "—")] + [
            (
                e.pk,
                f"#{e.pk} {e.action} in {e.environment_id} by {e.actor_name}, "
                f"{e.created_at.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC",
            )
            for e in events
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("kill_switch_event") is None:
            for name in ("environment", "since", "until"):
                if not data.get(name):
                    self.add_error(name, "Needed, unless you pick a kill-switch event.")
        try:
            times = AuditFilter.from_params(
                {"since": data.get("since") or "", "until": data.get("until") or ""}
            )
        except ValidationError as invalid:
            for field, messages in invalid.message_dict.items():
                self.add_error(field, messages)
        else:
            data["since"], data["until"] = times.since, times.until
        return data


@require_http_methods(["GET", "POST"])
def packs(request: HttpRequest) -> HttpResponse:
    """GET: the form. POST: build the pack and download it (a zip)."""
    _require_evidence_user(request, action="audit.pack", what="incident audit pack")
    context = {"window_default": int(kill_switch_window().total_seconds() // 60)}
    if request.method == "GET":
        initial = {
            k: request.GET[k] for k in ("kill_switch_event", "environment") if k in request.GET
        }
        return render(request, PACK, {**context, "form": PackForm(initial=initial)})
    form = PackForm(request.POST)
    if not form.is_valid():
        return render(request, PACK, {**context, "form": form}, status=400)
    data = form.cleaned_data
    minutes = data.get("window_minutes")
    try:
        pack = audit_pack_build(
            actor=request.user,
            since=data["since"],
            until=data["until"],
            environment=data["environment"] or None,
            kill_switch_event=data["kill_switch_event"],
            window=dt.timedelta(minutes=minutes) if minutes else None,
        )
    except ValidationError as invalid:
        for field, messages in invalid.message_dict.items():
            form.add_error(field if field in form.fields else None, messages)
        return render(request, PACK, {**context, "form": form}, status=400)
    response = FileResponse(
        pack.file, as_attachment=True, filename=pack.filename, content_type="application/zip"
    )
    response["Cache-Control"] = "no-store"
    response["X-Audit-Pack-Sha256"] = pack.sha256
    if pack.event is not None:
        response["X-Audit-Pack-Event"] = str(pack.event.pk)
    return response


evidence_urlpatterns = [
    path("verify/", verify, name="verify"),
    path("verify/<int:verification_id>/", verification, name="verification"),
    path("packs/", packs, name="packs"),
]
