"""The release pages (HTMX): the releases list with gate health at a glance, and a release's
page (header, charts, stage timeline, evaluations) that refreshes itself while live.

Views parse, read through the page selectors, and render the page or one of its named
partials (`rollouts/detail.html#live` when htmx asks). A poll that finds nothing changed is
answered 204, so htmx leaves the page (and its charts) alone.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_GET

from releasecontrol import selectors as core_selectors

from . import page_selectors as reads
from .charts import chart_period, metric_figures, traffic_figure
from .controls import controls_for
from .forms import ReplayForm
from .models import Release, ReleaseStatus
from .presenters import (
    evaluation_rows,
    event_label,
    gate_health,
    release_rows,
    stage_text,
    stage_timeline,
)
from .selectors import latest_evaluations

LIST = "rollouts/list.html"
DETAIL = "rollouts/detail.html"
LIST_PAGE_SIZE = 50
EVALUATIONS_PAGE_SIZE = 25
POLL_SECONDS = 5


def wants_partial(request: HttpRequest) -> bool:
    return bool(request.htmx) and not request.htmx.history_restore_request


def _viewable_or_403(request: HttpRequest) -> set[int]:
    ids = reads.viewable_environment_ids(request.user)
    if not ids:
        raise PermissionDenied("Refused: you hold no role in any environment, so no releases.")
    return ids


# --- The list -------------------------------------------------------------------------------


@require_GET
def release_list(request: HttpRequest) -> HttpResponse:
    ids = _viewable_or_403(request)
    environments = [e for e in core_selectors.environment_list() if e.pk in ids]
    environment = request.GET.get("environment", "").strip()
    status = request.GET.get("status", "").strip()
    errors = []
    if environment and environment not in {e.slug for e in environments}:
        errors.append(f"No environment {environment!r} that you may read.")
        environment = ""
    if status and status not in ReleaseStatus.values:
        errors.append(f"No status {status!r}: one of {', '.join(ReleaseStatus.values)}.")
        status = ""
    releases = reads.release_list_for_user(
        request.user,
        environment_ids=ids,
        environment=environment or None,
        status=status or None,
    )
    page = Paginator(releases, LIST_PAGE_SIZE).get_page(request.GET.get("page"))
    rows = list(page)
    filters = {k: v for k, v in (("environment", environment), ("status", status)) if v}
    context = {
        "rows": release_rows(rows, latest_evaluations(rows)),
        "page": page,
        "environments": environments,
        "statuses": ReleaseStatus.choices,
        "environment": environment,
        "status": status,
        "errors": errors,
        "filters_query": urlencode(filters) + "&" if filters else "",
        "poll_url": reverse("rollouts:list") + "?" + urlencode({**filters, "page": page.number}),
    }
    template = LIST + ("#releases" if wants_partial(request) else "")
    return render(request, template, context, status=400 if errors else 200)


# --- A release's page -----------------------------------------------------------------------


def release_for(request: HttpRequest, pk: int) -> Release:
    """The release, or 404 / 403 (the environments readable are asked once per request)."""
    ids = getattr(request, "_viewable_environment_ids", None)
    return reads.release_get_for_user(request.user, pk, environment_ids=ids)


def live_context(request: HttpRequest, release: Release, fingerprint: str) -> dict[str, Any]:
    """Everything the live part of the page shows (header, charts, timeline)."""
    now = timezone.now()
    events = reads.release_events(release)
    latest = latest_evaluations([release])
    start, end = chart_period(release, now=now)
    metrics = {gate.metric for gate in release.gates.all()}
    samples = reads.sample_series(release, metrics, start, end)
    evaluations = reads.evaluations_between(release, start, end)
    figures = metric_figures(release, samples, evaluations, events, start, end)
    figures["traffic"] = traffic_figure(release, events, start, end)
    stages = {s.index: s for s in release.stages.all()}
    detail_url = reverse("rollouts:detail", args=[release.pk])
    return {
        "release": release,
        "environment": release.environment,
        "controls": controls_for(request.user, release, reads.flag_states_of(release)),
        "stage": stage_text(release),
        "gates": gate_health(release, latest),
        "timeline": stage_timeline(release, events),
        "events": [(e, event_label(e, stages)) for e in reversed(events)],
        "figures": figures,
        "metric_charts": [k for k in figures if k.startswith("metric-")],
        "live": release.is_live,
        "poll_url": detail_url + "?" + urlencode({"known": fingerprint}),
        "poll_seconds": POLL_SECONDS,
    }


def evaluations_context(release: Release, page_number: Any, fingerprint: str) -> dict[str, Any]:
    page = Paginator(reads.evaluations_page_query(release), EVALUATIONS_PAGE_SIZE).get_page(
        page_number
    )
    url = reverse("rollouts:evaluations", args=[release.pk])
    return {
        "release": release,
        "evaluations": evaluation_rows(page),
        "evaluations_page": page,
        "evaluations_url": url,
        # Only the first page follows new evaluations; older pages stay where they are.
        "evaluations_poll": release.is_live and page.number == 1,
        "evaluations_poll_url": url + "?" + urlencode({"known": fingerprint}),
    }


def _poll_unchanged(request: HttpRequest, pk: int) -> tuple[bool, str]:
    """(nothing changed since the `known` fingerprint, the current fingerprint); 404/403 as
    the page would answer."""
    state = reads.release_fingerprint(pk)
    if state is None:
        raise Http404(f"No release {pk}")
    environment_id, fingerprint = state
    request._viewable_environment_ids = reads.viewable_environment_ids(request.user)
    if environment_id not in request._viewable_environment_ids:
        raise PermissionDenied("Refused: you hold no role where this release runs.")
    return request.GET.get("known") == fingerprint, fingerprint


@require_GET
def release_detail(request: HttpRequest, pk: int) -> HttpResponse:
    unchanged, fingerprint = _poll_unchanged(request, pk)
    if wants_partial(request) and unchanged:
        return HttpResponse(status=204)
    release = release_for(request, pk)
    context = live_context(request, release, fingerprint)
    if wants_partial(request):
        return render(request, DETAIL + "#live", context)
    context.update(evaluations_context(release, 1, fingerprint))
    context.update(replay_form=ReplayForm(release=release, now=timezone.now()))
    context.update(replay_url=reverse("rollouts:replay", args=[release.pk]))
    return render(request, DETAIL, context)


@require_GET
def release_evaluations(request: HttpRequest, pk: int) -> HttpResponse:
    """The evaluations table, one page (htmx swaps it in place; polled on the first page)."""
    unchanged, fingerprint = _poll_unchanged(request, pk)
    if wants_partial(request) and unchanged:
        return HttpResponse(status=204)
    release = release_for(request, pk)
    context = evaluations_context(release, request.GET.get("page"), fingerprint)
    if wants_partial(request):
        return render(request, DETAIL + "#evaluations", context)
    # A plain link to another page of the table: the whole page, on that table page.
    return render(request, DETAIL, {**live_context(request, release, fingerprint), **context})
