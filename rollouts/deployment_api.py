"""The deployment and DORA API (a django-ninja Router on the site's /api/v1/): a pipeline
registers a deployment, polls it for its go (Retry-After says when to ask again), reports
its outcome, or cancels it; anyone with a token reads the history and the DORA figures.

Handlers are thin: the schemas validate, one service acts, the selectors read the answer;
releasecontrol.api's exception handlers shape every error.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Prefetch
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from ninja import Path, Query, Router, Status

from releasecontrol.idempotency import idempotent_create
from releasecontrol.models import Environment
from releasecontrol.paging import cursor_decode, page
from releasecontrol.schemas import MAX_INT64, IdempotencyKeyHeader, errors
from releasecontrol.selectors import environment_get

from . import dora
from .deployment_close import deployment_cancel
from .deployment_schemas import (
    DeploymentCancelIn,
    DeploymentCursor,
    DeploymentEventIn,
    DeploymentIn,
    DeploymentListQuery,
    DeploymentOut,
    DeploymentPage,
    DoraOut,
    DoraQuery,
)
from .deployment_selectors import current, deployment_get, deployments_in_full, status_filter
from .deployment_status import OPEN, smoke_view
from .deployments import deployment_register, deployment_report
from .models import Deployment, DeploymentEvent, Release

router = Router(tags=["deployments"])

Id = Annotated[int, Path(ge=1, le=MAX_INT64, description="The deployment's id.")]
ONE = "/deployments/{id}"
WRITE_ERRORS = errors(400, 401, 403, 404, 409)


def retry_after_seconds() -> int:
    return max(1, int(settings.DEPLOYMENT_RETRY_AFTER_SECONDS))


def _name(user: Any) -> str | None:
    return user.username if user is not None else None


def _event_json(event: DeploymentEvent) -> dict[str, Any]:
    return {
        "at": event.at,
        "event": event.event,
        "detail": event.detail,
        "smoke_tests": event.smoke_tests,
        "actor": event.actor.username,
    }


def deployment_json(deployment: Deployment, *, now: dt.datetime) -> dict[str, Any]:
    """A deployment as the API shows it, from what deployments_in_full() and
    `with_events` read (a page costs the same queries whatever its length)."""
    status = current(deployment, now)
    return {
        "id": deployment.pk,
        "environment": deployment.environment.slug,
        "service": deployment.service,
        "version": deployment.version,
        "commit": deployment.commit,
        "commit_time": deployment.commit_time,
        "artifact": deployment.artifact,
        "kind": deployment.kind,
        "release": deployment.release_id,
        "notes": deployment.notes,
        "status": status,
        "approval": deployment.approval_request_id,
        "requested_by": deployment.requested_by.username,
        "approved_by": list(deployment.approved_by or []),
        "executed_by": _name(deployment.executed_by),
        "emergency_confirmed_by": _name(deployment.emergency_confirmed_by),
        "created_at": deployment.created_at,
        "go_at": deployment.go_at,
        "go_expires_at": deployment.go_expires_at,
        "started_at": deployment.started_at,
        "finished_at": deployment.finished_at,
        "succeeded_at": deployment.succeeded_at,
        "rolled_back_at": deployment.rolled_back_at,
        "smoke_tests": smoke_view(deployment),
        "retry_after": retry_after_seconds() if status in OPEN else None,
        "events": [_event_json(e) for e in deployment.events.all()],
    }


def with_events(deployments: Any) -> Any:
    return deployments.prefetch_related(
        Prefetch("events", queryset=DeploymentEvent.objects.select_related("actor"))
    )


def _one(pk: int, response: HttpResponse | None = None) -> DeploymentOut:
    found = with_events(deployments_in_full()).filter(pk=pk).first()
    if found is None:
        raise Http404(f"No deployment {pk}")
    body = DeploymentOut.model_validate(deployment_json(found, now=timezone.now()))
    if response is not None and body.retry_after is not None:
        response["Retry-After"] = str(body.retry_after)
    return body


def _environment_named(slug: str) -> Environment:
    try:
        return environment_get(slug)
    except Http404:
        raise ValidationError({"environment": f"There is no environment {slug!r}."}) from None


def _release_named(pk: int | None) -> Release | None:
    if pk is None:
        return None
    release = Release.objects.select_related("environment").filter(pk=pk).first()
    if release is None:
        raise ValidationError({"release": f"There is no release {pk}."})
    return release


@router.post(
    "/deployments",
    url_name="deployments",
    response={201: DeploymentOut, **WRITE_ERRORS},
    summary="Register a deployment: awaiting_approval where the environment needs it, else go",
)
def deployment_create(
    request: HttpRequest, payload: DeploymentIn, idempotency_key: IdempotencyKeyHeader = None
) -> Any:
    def create() -> tuple[int, DeploymentOut]:
        made = deployment_register(
            actor=request.auth,
            environment=_environment_named(payload.environment),
            service=payload.service,
            version=payload.version,
            commit=payload.commit,
            commit_time=payload.commit_time,
            artifact=payload.artifact,
            kind=payload.kind,
            release=_release_named(payload.release),
            checklist=payload.checklist,
            notes=payload.notes or "",
            idempotency_key=idempotency_key,
            reason=payload.reason or "",
        )
        return 201, _one(made.pk)

    result = idempotent_create(request, key=idempotency_key, body=payload, create=create)
    return Status(*result) if isinstance(result, tuple) else result


@router.get(
    "/deployments",
    url_name="deployments",
    response={200: DeploymentPage, **errors(400, 401, 404)},
    summary="Deployments, newest first",
)
def deployment_list(request: HttpRequest, query: Query[DeploymentListQuery]) -> dict[str, Any]:
    before = cursor_decode(query.cursor, DeploymentCursor)
    now = timezone.now()
    rows = deployments_in_full().order_by("-pk")
    slug = (query.environment or "").strip()
    if slug:
        rows = rows.filter(environment=environment_get(slug))
    if query.service:
        rows = rows.filter(service=query.service)
    if query.status:
        rows = rows.filter(status_filter(query.status, now))
    if before is not None:
        rows = rows.filter(pk__lt=before.id)
    items, next_cursor = page(
        list(with_events(rows)[: query.limit + 1]),
        query.limit,
        lambda d: DeploymentCursor(id=d.pk),
    )
    return {"items": [deployment_json(d, now=now) for d in items], "next": next_cursor}


@router.get(
    ONE,
    url_name="deployment",
    response={200: DeploymentOut, **errors(400, 401, 404)},
    summary="One deployment: deploy only on go; Retry-After says when to ask again",
)
def deployment_read(request: HttpRequest, id: Id, response: HttpResponse) -> DeploymentOut:
    return _one(id, response)


@router.post(
    ONE + "/events",
    url_name="deployment_events",
    response={200: DeploymentOut, **WRITE_ERRORS},
    summary="Report started, succeeded, failed or rolled_back, with smoke-test counts",
)
def deployment_event(request: HttpRequest, id: Id, payload: DeploymentEventIn) -> DeploymentOut:
    deployment_report(
        actor=request.auth,
        deployment=deployment_get(id),
        event=payload.event,
        detail=payload.detail or "",
        smoke_tests=payload.smoke_tests.model_dump() if payload.smoke_tests else None,
        reason=payload.reason or "",
    )
    return _one(id)


@router.post(
    ONE + "/cancel",
    url_name="deployment_cancel",
    response={200: DeploymentOut, **WRITE_ERRORS},
    summary="Withdraw a deployment not started (and its approval request)",
)
def deployment_withdraw(
    request: HttpRequest, id: Id, payload: DeploymentCancelIn | None = None
) -> DeploymentOut:
    deployment_cancel(
        actor=request.auth,
        deployment=deployment_get(id),
        reason=(payload.reason if payload else None) or "",
    )
    return _one(id)


@router.get(
    "/dora",
    url_name="dora",
    response={200: DoraOut, **errors(400, 401, 404)},
    tags=["dora"],
    summary="DORA figures over the last N days, with the counts behind each",
)
def dora_read(request: HttpRequest, query: Query[DoraQuery]) -> dict[str, Any]:
    slug = (query.environment or "").strip()
    environment = environment_get(slug) if slug else None
    figures = dora.dora_figures(
        environment=environment, service=(query.service or "").strip() or None, days=query.days
    )
    return figures.as_dict()
