"""The deployment pages: the history (filters, CSV export), one deployment with its request,
checklist, events and audit trail, and the DORA figures. Read-only: deployments change
through the API (pipelines) and the approvals pages (the go)."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_GET

from releasecontrol import selectors as core_selectors
from releasecontrol.audit.selectors import AuditFilter, audit_events
from releasecontrol.csvwriter import CsvWriter
from releasecontrol.templatetags.audit_nav import can_read_audit

from .deployment_forms import DeploymentFilterForm, DoraFilterForm
from .deployment_presenters import csv_rows, dora_charts, history_rows
from .deployment_selectors import deployment_get, deployments_in_full, status_filter
from .deployment_status import deployment_target
from .dora import dora_figures
from .models import DeploymentEvent, DeploymentStatus

PAGE_SIZE = 50
EXPORT_LIMIT = 100_000
AUDIT_ROWS = 50


def _form_errors(form: Any) -> str:
    return "; ".join(f"{name}: {' '.join(errors)}" for name, errors in form.errors.items())


def _filtered(form: DeploymentFilterForm, environments: dict[str, Any], now: dt.datetime):
    data = form.cleaned_data
    rows = deployments_in_full().order_by("-pk")
    if data.get("environment"):
        rows = rows.filter(environment=environments.get(data["environment"]))
    if data.get("service"):
        rows = rows.filter(service=data["service"])
    if data.get("status"):
        rows = rows.filter(status_filter(data["status"], now))
    start, end = form.bounds()
    if start:
        rows = rows.filter(created_at__gte=start)
    if end:
        rows = rows.filter(created_at__lt=end)
    return rows


def _read_filter(request: HttpRequest) -> tuple[DeploymentFilterForm, dict[str, Any], str]:
    form = DeploymentFilterForm(request.GET)
    environments = {e.slug: e for e in core_selectors.environment_list()}
    errors = ""
    if not form.is_valid():
        errors = _form_errors(form)
    elif form.cleaned_data.get("environment") and (
        form.cleaned_data["environment"] not in environments
    ):
        form.add_error("environment", "no such environment")
        errors = _form_errors(form)
    return form, environments, errors


@require_GET
def deployment_history(request: HttpRequest) -> HttpResponse:
    form, environments, errors = _read_filter(request)
    now = timezone.now()
    rows, next_before = [], None
    if not errors:
        found = _filtered(form, environments, now)
        before = form.cleaned_data.get("before")
        if before:
            found = found.filter(pk__lt=before)
        page = list(found[: PAGE_SIZE + 1])
        rows = history_rows(page[:PAGE_SIZE], now=now)
        next_before = page[PAGE_SIZE - 1].pk if len(page) > PAGE_SIZE else None
    filters = {k: v for k, v in (form.data.items() if errors else form.cleaned_data.items()) if v}
    filters.pop("before", None)
    context = {
        "form": form,
        "errors": errors,
        "rows": rows,
        "environments": list(environments.values()),
        "statuses": DeploymentStatus.choices,
        "chosen": {k: str(v) for k, v in filters.items()},
        "filters_query": urlencode(filters),
        "next_query": urlencode({**filters, "before": next_before}) if next_before else "",
    }
    template = "rollouts/deployments.html"
    if request.htmx and not request.htmx.history_restore_request:
        template += "#results"
    return render(request, template, context, status=400 if errors else 200)


@require_GET
def deployment_export(request: HttpRequest) -> HttpResponse:
    """The filtered history as CSV, through the one formula-safe writer."""
    form, environments, errors = _read_filter(request)
    if errors:
        return HttpResponse(f"Bad filter: {errors}\n", status=400, content_type="text/plain")
    now = timezone.now()
    buffer = io.StringIO()
    CsvWriter(buffer).writerows(
        csv_rows(_filtered(form, environments, now)[:EXPORT_LIMIT], now=now)
    )
    response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="deployments-{now:%Y%m%d-%H%M%S}.csv"'
    return response


def _request_and_checklist(request_id: int | None) -> tuple[Any, list[Any]]:
    if request_id is None:
        return None, []
    from approvals.models import ApprovalRequest

    approval = ApprovalRequest.objects.filter(pk=request_id).first()
    if approval is None:
        return None, []
    return approval, list(approval.checklist.select_related("checked_by").order_by("position"))


@require_GET
def deployment_detail(request: HttpRequest, pk: int) -> HttpResponse:
    deployment = deployment_get(pk)
    now = timezone.now()
    row = history_rows([deployment], now=now)[0]
    approval, checklist = _request_and_checklist(deployment.approval_request_id)
    target = deployment_target(deployment)
    audit_filter = AuditFilter(target_type=target.type, target_id=target.id)
    reader = can_read_audit(request.user)
    context = {
        "row": row,
        "deployment": deployment,
        "approval": approval,
        "checklist": checklist,
        "events": DeploymentEvent.objects.filter(deployment=deployment).select_related("actor"),
        "audit_reader": reader,
        "audit_events": list(audit_events(audit_filter)[:AUDIT_ROWS]) if reader else [],
        "audit_link": reverse("audit:explorer") + "?" + urlencode(audit_filter.as_params()),
    }
    return render(request, "rollouts/deployment_detail.html", context)


@require_GET
def dora_page(request: HttpRequest) -> HttpResponse:
    form = DoraFilterForm(request.GET)
    environments = {e.slug: e for e in core_selectors.environment_list()}
    errors = "" if form.is_valid() else _form_errors(form)
    data = form.cleaned_data if not errors else {}
    slug = data.get("environment") or ""
    if slug and slug not in environments:
        errors = "environment: no such environment"
    if errors:
        context = {"errors": errors, "environments": list(environments.values()), "chosen": {}}
        return render(request, "rollouts/dora.html", context, status=400)
    days = data.get("days") or 30
    service = (data.get("service") or "").strip() or None
    figures = dora_figures(environment=environments.get(slug), service=service, days=days)
    context = {
        "figures": figures,
        "charts": dora_charts(figures),
        "environments": list(environments.values()),
        "chosen": {"environment": slug, "service": service or "", "days": days},
        "history_query": urlencode(
            {k: v for k, v in (("environment", slug), ("service", service)) if v}
        ),
    }
    return render(request, "rollouts/dora.html", context)
