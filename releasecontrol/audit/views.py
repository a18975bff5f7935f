"""The auditors' workspace: the history explorer, one event, browser exports of exactly the
filtered set, and charts.

Who may read it: whoever may export the audit trail in every environment (auditors, release
managers) and superusers. Reading is not an action, so a refused page is a plain 403; an
export is one: the export service (export.py) authorizes it and records it before the
first byte is streamed.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_GET

from .. import actions
from ..models import AuditEvent, Environment, Outcome, Tier, User, UserKind
from ..policy import decide, registered_actions
from ..selectors import environment_list
from . import GENESIS_HASH, canonical_fields, chain_hash
from .charts import activity_by_day, chart_figures, chart_totals, chart_window
from .export import audit_export_open
from .selectors import (
    FILTER_FIELDS,
    MAX_EVENT_ID,
    AuditFilter,
    AuditPage,
    audit_page,
    event_id_or_none,
)

EXPLORER = "audit/explorer.html"
NAV_CACHE_SECONDS = 60


# --- Who may read -----------------------------------------------------------------------


def user_may_read_audit(user: User) -> bool:
    """Superusers, and whoever holds view_audit in every environment."""
    if not user.is_authenticated:
        return False
    return decide(user, actions.AUDIT_READ, None).allowed


def user_may_read_audit_cached(user: User) -> bool:
    """For the navigation link on every page: no query on most pages (the pages themselves
    check for real). A role change shows in the menu within a minute."""
    if not user.is_authenticated:
        return False
    if user.is_superuser and user.is_human:
        return True
    key = f"audit-nav:{user.pk}:{user.date_joined.timestamp()}"
    allowed = cache.get(key)
    if allowed is None:
        allowed = user_may_read_audit(user)
        cache.set(key, allowed, NAV_CACHE_SECONDS)
    return allowed


def _require_reader(request: HttpRequest) -> None:
    if not user_may_read_audit(request.user):
        raise PermissionDenied(
            "Only auditors, release managers, on-call and administrators read the trail."
        )


def _wants_partial(request: HttpRequest) -> bool:
    return bool(request.htmx) and not request.htmx.history_restore_request


# --- Reading the filter -----------------------------------------------------------------


@dataclass(frozen=True)
class FilterForm:
    """The filter as asked (raw values to redisplay) and as understood (or its errors)."""

    raw: dict[str, str]
    audit_filter: AuditFilter
    errors: dict[str, list[str]]

    @classmethod
    def of(cls, request: HttpRequest) -> FilterForm:
        raw = {name: request.GET.get(name, "").strip() for name in FILTER_FIELDS}
        try:
            return cls(raw, AuditFilter.from_params(raw), {})
        except ValidationError as exc:
            return cls(raw, AuditFilter(), exc.message_dict)

    @property
    def query_string(self) -> str:
        return self.audit_filter.query_string()


def _before(request: HttpRequest, errors: dict[str, list[str]]) -> int | None:
    raw = request.GET.get("before", "").strip()
    if not raw:
        return None
    before = event_id_or_none(raw)
    if before is None:
        errors["before"] = [f"{raw[:40]!r} is not an event id (1 to {MAX_EVENT_ID})"]
    return before


def _filter_context(form: FilterForm, environments: list[Environment]) -> dict[str, Any]:
    names = sorted(a.name for a in registered_actions())
    prefixes = sorted({name.split(".")[0] + "." for name in names})
    return {
        "form": form,
        "environments": environments,
        "actor_kinds": UserKind.choices,
        "outcomes": Outcome.choices,
        "action_choices": prefixes + names,
    }


# --- Explorer ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EventRow:
    event: AuditEvent
    production: bool
    target_url: str | None
    refused: str


def target_url(event: AuditEvent) -> str | None:
    """Where the thing an event was about lives in the dashboard, if it has a page.

    Events also record what was refused, whatever its name (a key no flag could have, like
    `x/y`): such a name has no page, and is shown as plain text.
    """
    try:
        if event.target_type == "flag" and event.target_name:
            return reverse("flags:detail", args=[event.target_name])
        if event.target_type == "environment" and event.target_name:
            return reverse("environment_detail", args=[event.target_name])
    except NoReverseMatch:
        return None
    if event.target_type == "tag" and event.target_name:
        return reverse("flags:board") + "?" + urlencode({"tag": event.target_name})
    return None


def _refusal(event: AuditEvent) -> str:
    if event.outcome == Outcome.DENIED and isinstance(event.after, dict):
        return str(event.after.get("refused") or "")
    return ""


def _rows(events: Iterable[AuditEvent], production: set[str]) -> list[EventRow]:
    return [
        EventRow(event, event.environment_id in production, target_url(event), _refusal(event))
        for event in events
    ]


@require_GET
def explorer(request: HttpRequest) -> HttpResponse:
    _require_reader(request)
    form = FilterForm.of(request)
    errors = dict(form.errors)
    before = _before(request, errors)
    environments = list(environment_list())
    page = AuditPage([], None) if errors else audit_page(form.audit_filter, before=before)
    production = {e.slug for e in environments if e.tier == Tier.PRODUCTION}
    context = {
        **_filter_context(form, environments),
        "errors": errors,
        "rows": _rows(page.events, production),
        "next_before": page.next_before,
        "before": before,
    }
    if not _wants_partial(request):
        return render(request, EXPLORER, context, status=400 if errors else 200)
    response = render(request, EXPLORER + "#results", context, status=400 if errors else 200)
    if not errors:
        # The address bar shows the filter as understood, not every empty field of the form.
        params = {**form.audit_filter.as_params(), **({"before": before} if before else {})}
        response["HX-Push-Url"] = reverse("audit:explorer") + (
            f"?{urlencode(params)}" if params else ""
        )
    return response


# --- One event --------------------------------------------------------------------------


@dataclass(frozen=True)
class DiffRow:
    key: str
    before: str
    after: str
    change: str  # "added", "removed", "changed" or "same"


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested objects become dotted keys; lists and scalars stay whole."""
    if isinstance(value, dict) and value:
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}{key}."))
        return flat
    return {prefix[:-1] or "(value)": value}


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


_MISSING = object()


def diff_rows(before: Any, after: Any) -> list[DiffRow]:
    """A key-level comparison of an event's before and after, changed keys first."""
    old = _flatten(before) if before is not None else {}
    new = _flatten(after) if after is not None else {}
    rows = []
    for key in sorted(old.keys() | new.keys()):
        a, b = old.get(key, _MISSING), new.get(key, _MISSING)
        if a is _MISSING:
            change = "added"
        elif b is _MISSING:
            change = "removed"
        else:
            change = "same" if a == b else "changed"
        rows.append(
            DiffRow(
                key,
                "" if a is _MISSING else _show(a),
                "" if b is _MISSING else _show(b),
                change,
            )
        )
    rows.sort(key=lambda row: row.change == "same")
    return rows


@require_GET
def event_detail(request: HttpRequest, event_id: int) -> HttpResponse:
    _require_reader(request)
    event = get_object_or_404(AuditEvent.objects.select_related("environment"), pk=event_id)
    previous = (
        AuditEvent.objects.filter(id__lt=event.pk).order_by("-id").values("id", "hash").first()
    )
    described = {a.name: a.description for a in registered_actions()}
    context = {
        "event": event,
        "production": event.environment is not None and event.environment.is_production,
        "action_description": described.get(event.action, ""),
        "target_url": target_url(event),
        "refused": _refusal(event),
        "diff": diff_rows(event.before, event.after),
        "before_json": json.dumps(event.before, indent=2, ensure_ascii=False, sort_keys=True),
        "after_json": json.dumps(event.after, indent=2, ensure_ascii=False, sort_keys=True),
        "hash_ok": chain_hash(event.prev_hash, canonical_fields(event)) == event.hash,
        "previous": previous,
        "link_ok": (previous["hash"] if previous else GENESIS_HASH) == event.prev_hash,
        "target_history": reverse("audit:explorer")
        + "?"
        + urlencode({"target_type": event.target_type, "target_id": event.target_id}),
    }
    return render(request, "audit/event_detail.html", context)


# --- Browser export ---------------------------------------------------------------------


def export_filename(audit_filter: AuditFilter, fmt: str, at: dt.datetime) -> str:
    """Names what was asked and when: audit-production-denied-agent-20261121T220501Z.csv"""
    parts = []
    for name, value in audit_filter.as_params().items():
        if name in ("since", "until"):
            moment = getattr(audit_filter, name)
            value = f"{name}-{moment.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}"
        parts.append(value)
    label = re.sub(r"[^A-Za-z0-9._-]+", "-", "-".join(parts) or "all").strip("-.")[:120]
    return f"audit-{label or 'all'}-{at.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}.{fmt}"


@require_GET
def export(request: HttpRequest, fmt: str) -> HttpResponse:
    """Exactly the filtered events, streamed. The export service authorizes it and records
    it (with the filter, the format and the last event id it holds) before the first byte."""
    form = FilterForm.of(request)
    errors = form.errors
    if not errors:
        try:
            stream = audit_export_open(actor=request.user, audit_filter=form.audit_filter, fmt=fmt)
        except ValidationError as exc:
            errors = exc.message_dict
    if errors:
        problems = "; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items())
        return HttpResponse(f"Bad filter: {problems}\n", status=400, content_type="text/plain")
    response = StreamingHttpResponse(stream, content_type=stream.content_type)
    filename = export_filename(form.audit_filter, fmt, timezone.now())
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    response["X-Audit-Export-Up-To-Id"] = str(stream.to_id)
    return response


# --- Charts -----------------------------------------------------------------------------


@require_GET
def charts(request: HttpRequest) -> HttpResponse:
    _require_reader(request)
    form = FilterForm.of(request)
    environments = list(environment_list())
    window = chart_window(form.audit_filter, now=timezone.now())
    counts = [] if form.errors else activity_by_day(window)
    context = {
        **_filter_context(form, environments),
        "errors": form.errors,
        "window": window,
        "defaulted": window != form.audit_filter,
        "figures": chart_figures(counts, window),
        "totals": chart_totals(counts),
    }
    return render(request, "audit/charts.html", context, status=400 if form.errors else 200)
