"""The deployment state machine, pure: which event moves which status where, why another is
refused, and the status a deployment has now (a stored status can be behind the clock: the
refresh task stores what this computes, and every read computes it too). And how audit
events and notifications name a deployment."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import models

from releasecontrol.audit import Target
from releasecontrol.models import Environment

from .models import Deployment
from .models import DeploymentStatus as S


class Event(models.TextChoices):
    STARTED = "started"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"


EVENTS = tuple(Event.values)

TRANSITIONS: dict[tuple[str, str], str] = {
    (S.GO, Event.STARTED): S.IN_PROGRESS,
    (S.IN_PROGRESS, Event.SUCCEEDED): S.SUCCEEDED,
    (S.IN_PROGRESS, Event.FAILED): S.FAILED,
    (S.SUCCEEDED, Event.ROLLED_BACK): S.ROLLED_BACK,
    (S.FAILED, Event.ROLLED_BACK): S.ROLLED_BACK,
}
# Not started yet: may still be cancelled, and a pipeline polls these.
OPEN = (S.AWAITING_APPROVAL, S.GO)
# Reached an outcome (DORA counts these).
FINISHED = (S.SUCCEEDED, S.FAILED, S.ROLLED_BACK)
# Ended without running.
CLOSED = (S.REJECTED, S.EXPIRED, S.CANCELLED)
# The approval request's statuses that close a deployment waiting on it, and what it becomes.
REQUEST_CLOSES = {"rejected": S.REJECTED, "cancelled": S.CANCELLED, "expired": S.EXPIRED}


def status_now(
    status: str,
    *,
    go_expires_at: dt.datetime | None,
    request_status: str | None,
    request_expires_at: dt.datetime | None,
    now: dt.datetime,
) -> str:
    if status == S.GO and go_expires_at is not None and now >= go_expires_at:
        return S.EXPIRED
    if status == S.AWAITING_APPROVAL:
        if request_status in REQUEST_CLOSES:
            return REQUEST_CLOSES[request_status]
        if request_expires_at is not None and now >= request_expires_at:
            return S.EXPIRED
    return status


@dataclass(frozen=True)
class Refusal:
    code: str
    detail: str


def transition_refusal(deployment: Any, status: str, event: str) -> Refusal | None:
    """Why `event` cannot be reported on a deployment in `status`, or None."""
    if (status, event) in TRANSITIONS:
        return None
    name = f"Deployment #{deployment.pk}"
    if status == S.EXPIRED and event == Event.STARTED:
        return Refusal(
            "expired",
            f"{name}'s go expired at {deployment.go_expires_at:%Y-%m-%d %H:%M} UTC: "
            "register the deployment again.",
        )
    if event == Event.STARTED and status == S.AWAITING_APPROVAL:
        return Refusal(
            "not_go",
            f"{name} is awaiting approval: deploy only once its status is go "
            "(poll GET /api/v1/deployments/{id}, honouring Retry-After).",
        )
    if status in CLOSED:
        return Refusal("invalid_transition", f"{name} is {status}: nothing more to report.")
    if event == Event.ROLLED_BACK:
        return Refusal(
            "invalid_transition",
            f"{name} is {status}: rolled_back is reported only after succeeded or failed.",
        )
    if event in (Event.SUCCEEDED, Event.FAILED) and status == S.GO:
        return Refusal("invalid_transition", f"{name} has its go: report started first.")
    if event in (Event.SUCCEEDED, Event.FAILED) and status == S.AWAITING_APPROVAL:
        return Refusal("not_go", f"{name} is awaiting approval: it has not been deployed.")
    return Refusal("invalid_transition", f"{name} is {status}: {event} cannot follow it.")


# --- How audit events and notifications name a deployment --------------------------------


def deployment_target(deployment: Deployment) -> Target:
    return Target(
        "deployment",
        str(deployment.pk or ""),
        f"{deployment.service} {deployment.version} to {deployment.environment.slug}",
    )


def deployment_view(deployment: Deployment) -> dict[str, Any]:
    """What audit events record of a deployment."""
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
        "status": deployment.status,
        "approval": deployment.approval_request_id,
        "go_expires_at": deployment.go_expires_at,
        "smoke_tests": smoke_view(deployment),
    }


def smoke_view(deployment: Deployment) -> dict[str, int] | None:
    if deployment.smoke_passed is None and deployment.smoke_failed is None:
        return None
    return {"passed": deployment.smoke_passed or 0, "failed": deployment.smoke_failed or 0}


def go_ttl() -> dt.timedelta:
    return dt.timedelta(hours=settings.APPROVAL_REQUEST_TTL_HOURS)


def needs_approval(environment: Environment) -> bool:
    return environment.approvals_required > 0
