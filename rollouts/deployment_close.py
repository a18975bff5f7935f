"""Ending a deployment that never ran: a pipeline or person cancelling it, and the refresh
task closing those whose go expired or whose request ended (DESIGN.md, "Deployments")."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone

from releasecontrol.audit import audit_record
from releasecontrol.models import User
from releasecontrol.policy import authorize

from . import actions
from .deployment_status import OPEN, deployment_target, deployment_view, status_now
from .deployments import InvalidTransition, _lock, current_status
from .models import Deployment, DeploymentEvent, DeploymentStatus


@transaction.atomic
def deployment_cancel(*, actor: User, deployment: Deployment, reason: str = "") -> Deployment:
    """The pipeline (or a person) withdraws a deployment not started yet. One awaiting
    approval cancels its request too (the requester's, or a release manager's, to cancel);
    one with its go, its requester or someone who may give a go there."""
    environment = deployment.environment
    authorize(
        actor,
        actions.DEPLOYMENT_CANCEL,
        environment,
        target=deployment_target(deployment),
        requested={"deployment": deployment.pk},
        reason=reason,
    )
    deployment = _lock(deployment)
    now = timezone.now()
    status = current_status(deployment, now=now)
    if status not in OPEN:
        raise InvalidTransition(
            f"Deployment #{deployment.pk} is {status}: only one awaiting approval or with its "
            "go, not started, can be cancelled.",
            deployment_status=status,
        )
    if status == DeploymentStatus.GO and actor.pk != deployment.requested_by_id:
        # Someone else's go is withdrawn only by someone who could have given it.
        authorize(
            actor,
            actions.DEPLOYMENT_EXECUTE,
            environment,
            target=deployment_target(deployment),
            requested={"deployment": deployment.pk, "cancel": True},
            reason=reason,
        )
    before = deployment_view(deployment)
    if status == DeploymentStatus.AWAITING_APPROVAL and deployment.approval_request_id:
        from approvals.selectors import approval_request_get
        from approvals.services import approval_cancel

        approval_cancel(
            actor=actor,
            request=approval_request_get(deployment.approval_request_id),
            reason=reason or f"deployment #{deployment.pk} cancelled",
        )
    deployment.status, deployment.updated_at = DeploymentStatus.CANCELLED, now
    deployment.save(update_fields=["status", "updated_at"])
    DeploymentEvent.objects.create(
        deployment=deployment, at=now, event="cancelled", actor=actor, detail=reason
    )
    audit_record(
        actor=actor,
        action=actions.DEPLOYMENT_CANCEL.name,
        environment=environment,
        target=deployment_target(deployment),
        before=before,
        after=deployment_view(deployment),
        reason=reason,
    )
    return deployment


def deployments_close(*, now: dt.datetime | None = None) -> list[int]:
    """The refresh task's body (the system actor): store the status that reads compute, for
    gos past their expiry and deployments whose request ended. Returns the ids closed."""
    from .deployment_selectors import deployments_to_close

    now = now or timezone.now()
    system = User.system()
    closed = []
    with transaction.atomic():
        authorize(system, actions.DEPLOYMENT_CLOSE)
        for deployment in deployments_to_close(now=now):
            status = status_now(
                deployment.status,
                go_expires_at=deployment.go_expires_at,
                request_status=deployment.request_status,
                request_expires_at=deployment.request_expires_at,
                now=now,
            )
            if status == deployment.status:
                continue
            before = deployment_view(deployment)
            deployment.status, deployment.updated_at = status, now
            deployment.save(update_fields=["status", "updated_at"])
            DeploymentEvent.objects.create(
                deployment=deployment, at=now, event=status, actor=system
            )
            audit_record(
                actor=system,
                action=actions.DEPLOYMENT_CLOSE.name,
                environment=deployment.environment,
                target=deployment_target(deployment),
                before=before,
                after=deployment_view(deployment),
                reason=f"{before['status']} -> {status}",
            )
            closed.append(deployment.pk)
    return closed
