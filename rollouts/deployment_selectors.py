"""Reads of deployments, with their joins done and their status as it is now."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.http import Http404
from django.utils import timezone

from releasecontrol.models import Environment

from .deployment_status import FINISHED, REQUEST_CLOSES, status_now
from .models import Deployment, DeploymentStatus


def _request(field: str) -> Subquery:
    from approvals.models import ApprovalRequest

    return Subquery(
        ApprovalRequest.objects.filter(pk=OuterRef("approval_request_id")).values(field)[:1]
    )


def deployments_in_full() -> QuerySet[Deployment]:
    """Deployments newest first, with the people and the request's status and expiry (one
    query for any number of rows); `status_now` of each row answers its status now."""
    return Deployment.objects.select_related(
        "environment", "requested_by", "executed_by", "emergency_confirmed_by", "release"
    ).annotate(request_status=_request("status"), request_expires_at=_request("expires_at"))


def current(deployment: Deployment, now: dt.datetime | None = None) -> str:
    """The status now of a row read through deployments_in_full."""
    return status_now(
        deployment.status,
        go_expires_at=deployment.go_expires_at,
        request_status=getattr(deployment, "request_status", None),
        request_expires_at=getattr(deployment, "request_expires_at", None),
        now=now or timezone.now(),
    )


def deployment_get(pk: int) -> Deployment:
    try:
        return deployments_in_full().get(pk=pk)
    except Deployment.DoesNotExist:
        raise Http404(f"No deployment {pk}") from None


def status_filter(status: str, now: dt.datetime) -> Q:
    """Rows whose status now is `status` (the SQL twin of status_now)."""
    S = DeploymentStatus
    go_live = Q(go_expires_at__isnull=True) | Q(go_expires_at__gt=now)
    waiting_live = ~Q(request_status__in=list(REQUEST_CLOSES)) & (
        Q(request_expires_at__isnull=True) | Q(request_expires_at__gt=now)
    )
    if status == S.GO:
        return Q(status=S.GO) & go_live
    if status == S.AWAITING_APPROVAL:
        return Q(status=S.AWAITING_APPROVAL) & waiting_live
    closing = {v: k for k, v in REQUEST_CLOSES.items()}
    became = (
        Q(status=S.AWAITING_APPROVAL, request_status=closing[status])
        if status in closing
        else Q(pk__in=[])
    )
    if status == S.EXPIRED:
        became |= (Q(status=S.GO) & ~go_live) | Q(
            status=S.AWAITING_APPROVAL, request_expires_at__lte=now
        ) & ~Q(request_status__in=["rejected", "cancelled"])
    return Q(status=status) | became


def deployments_to_close(*, now: dt.datetime) -> QuerySet[Deployment]:
    """Rows whose stored status is behind: locked, skipping rows another worker holds."""
    return (
        deployments_in_full()
        .filter(
            Q(status=DeploymentStatus.GO, go_expires_at__lte=now)
            | Q(status=DeploymentStatus.AWAITING_APPROVAL)
            & (Q(request_status__in=list(REQUEST_CLOSES)) | Q(request_expires_at__lte=now))
        )
        .select_for_update(of=("self",), skip_locked=True)
        .order_by("pk")
    )


@dataclass(frozen=True)
class ServiceState:
    """What a service runs in an environment: the last success, and the last outcome."""

    running: Deployment | None
    last: Deployment | None


def service_state(
    *, environment: Environment, service: str, exclude: int | None = None
) -> ServiceState:
    rows = Deployment.objects.filter(environment=environment, service=service).exclude(pk=exclude)
    running = rows.filter(status=DeploymentStatus.SUCCEEDED).order_by("-succeeded_at", "-pk")
    last = rows.filter(status__in=FINISHED).order_by("-finished_at", "-pk")
    return ServiceState(running=running.first(), last=last.first())


def deployment_failures_recent(
    environment: Environment, *, since: dt.datetime
) -> QuerySet[Deployment]:
    """Failed or rolled-back deployments there since a moment, newest first (what the
    on-call page puts beside the rollback button)."""
    return (
        deployments_in_full()
        .filter(
            environment=environment,
            status__in=[DeploymentStatus.FAILED, DeploymentStatus.ROLLED_BACK],
        )
        .filter(Q(finished_at__gte=since) | Q(rolled_back_at__gte=since))
        .order_by("-finished_at", "-pk")
    )
