"""Deployments reported by CD pipelines: registering one, its go and its outcome
(DESIGN.md, "Deployments"); cancelling one and closing those whose go or request ended are
in rollouts/deployment_close.py.

The state machine (`TRANSITIONS`): awaiting_approval -> go (a person executes the approved
`deployment.execute` request) -> in_progress (`started`) -> succeeded | failed, and either of
those -> rolled_back. A go not started before it expires becomes expired; a request that is
rejected, cancelled or expires closes its deployment the same way; awaiting_approval and go
may be cancelled. Where the environment needs no approvals the go is given at registration.

Inside a blackout window a deployment counts as an increase of exposure: its go is held
(approvals refuses to execute the request, and deployment_go re-checks) except through an
approved emergency request. In an environment that needs no approvals there is no request to
approve, so registering there during a blackout is refused.
"""

from __future__ import annotations

import datetime as dt

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from releasecontrol import requestable
from releasecontrol.audit import audit_record
from releasecontrol.errors import Conflict
from releasecontrol.models import Environment, Tier, User
from releasecontrol.policy import authorize
from releasecontrol.requestable import VerifiedApproval

from . import actions
from .deployment_input import MAX_DETAIL, clean_registration, clean_smoke_tests, clean_text
from .deployment_notify import FAILED_EVENT, ROLLED_BACK_EVENT, notify_failure
from .deployment_status import (
    EVENTS,
    TRANSITIONS,
    Event,
    deployment_target,
    deployment_view,
    go_ttl,
    needs_approval,
    status_now,
    transition_refusal,
)
from .models import Deployment, DeploymentEvent, DeploymentKind, DeploymentStatus, Release

EMERGENCY = "emergency"


class NotInStaging(Conflict):
    code = "not_in_staging"


class DeploymentNotReady(Conflict):
    code = "not_go"


class DeploymentExpired(Conflict):
    code = "expired"


class InvalidTransition(Conflict):
    code = "invalid_transition"


class BlackoutOpen(Conflict):
    code = "blackout"


# --- Register -------------------------------------------------------------------------------


def _succeeded_in_staging(service: str, version: str) -> bool:
    return Deployment.objects.filter(
        environment__tier=Tier.STAGING,
        service=service,
        version=version,
        succeeded_at__isnull=False,
    ).exists()


@transaction.atomic
def deployment_register(
    *,
    actor: User,
    environment: Environment,
    service: str,
    version: str,
    commit: str,
    commit_time: dt.datetime,
    artifact: str,
    kind: str = DeploymentKind.STANDARD,
    release: Release | None = None,
    checklist: str | None = None,
    notes: str = "",
    idempotency_key: str | None = None,
    reason: str = "",
) -> Deployment:
    """A pipeline announces a deployment. Where the environment needs approvals it waits
    (awaiting_approval) on a `deployment.execute` request made now with the environment's
    checklist; otherwise its go is given at once. A standard production deployment of a
    version that never succeeded in staging is refused (409); an emergency may skip staging,
    and needs one approval more and a post-review (the approvals app's rules)."""
    now = timezone.now()
    fields = clean_registration(
        environment=environment,
        service=service,
        version=version,
        commit=commit,
        commit_time=commit_time,
        artifact=artifact,
        kind=kind,
        release=release,
        notes=notes,
        now=now,
    )
    deployment = Deployment(
        environment=environment,
        release=release,
        requested_by=actor,
        created_at=now,
        updated_at=now,
        **fields,
    )
    requested = {
        **deployment_view(deployment),
        "idempotency_key": idempotency_key,
    }
    authorize(
        actor,
        actions.DEPLOYMENT_REGISTER,
        environment,
        target=deployment_target(deployment),
        requested=requested,
        reason=reason,
    )
    emergency = deployment.kind == DeploymentKind.EMERGENCY
    if (
        environment.is_production
        and not emergency
        and not _succeeded_in_staging(deployment.service, deployment.version)
    ):
        raise NotInStaging(
            f"{deployment.service} {deployment.version} never succeeded in staging: deploy "
            "it there first, or register an emergency deployment (which a person confirms "
            "and one more approver approves).",
            service=deployment.service,
            version=deployment.version,
        )
    if emergency and actor.is_human:
        deployment.emergency_confirmed_by = actor
    approval = needs_approval(environment)
    if not approval:
        window = requestable.blackout_now(environment, now)
        if window is not None:
            raise BlackoutOpen(
                f"A blackout window is open in {environment.slug}: {window}. Deployments there "
                "wait until it ends.",
                blackout=window,
            )
        deployment.status = DeploymentStatus.GO
        deployment.go_at, deployment.go_expires_at = now, now + go_ttl()
    else:
        deployment.status = DeploymentStatus.AWAITING_APPROVAL
    deployment.save()
    if approval:
        from approvals.services import approval_request_create

        made = approval_request_create(
            actor=actor,
            environment=environment,
            action=actions.DEPLOYMENT_EXECUTE.name,
            parameters={"deployment": deployment.pk},
            title=f"Deploy {deployment.service} {deployment.version} to {environment.slug}",
            urgency=EMERGENCY if emergency else "routine",
            risk="high" if environment.is_production else "medium",
            impact=deployment.notes,
            checklist=checklist,
            reason=reason or f"deployment #{deployment.pk}",
        )
        deployment.approval_request_id = made.pk
        deployment.save(update_fields=["approval_request_id"])
    DeploymentEvent.objects.create(
        deployment=deployment, at=now, event="registered", actor=actor, detail=deployment.notes
    )
    audit_record(
        actor=actor,
        action=actions.DEPLOYMENT_REGISTER.name,
        environment=environment,
        target=deployment_target(deployment),
        after={**deployment_view(deployment), "idempotency_key": idempotency_key},
        reason=reason,
    )
    return deployment


# --- The go ---------------------------------------------------------------------------------


def _lock(deployment: Deployment | int) -> Deployment:
    pk = deployment.pk if isinstance(deployment, Deployment) else deployment
    return (
        Deployment.objects.select_for_update(of=("self",))
        .select_related("environment", "requested_by")
        .get(pk=pk)
    )


def _request_facts(request_id: int | None) -> tuple[str | None, dt.datetime | None, int | None]:
    """(status, expires_at, emergency_confirmed_by_id) of the deployment's request."""
    if request_id is None:
        return None, None, None
    from approvals.models import ApprovalRequest

    row = (
        ApprovalRequest.objects.filter(pk=request_id)
        .values_list("status", "expires_at", "emergency_confirmed_by_id")
        .first()
    )
    return row if row is not None else (None, None, None)


def current_status(deployment: Deployment, *, now: dt.datetime | None = None) -> str:
    """The status as it is now: a go past its expiry is expired, a deployment whose request
    ended is rejected, cancelled or expired, whether or not the refresh task has run."""
    request_status, request_expires, _ = (
        _request_facts(deployment.approval_request_id)
        if deployment.status == DeploymentStatus.AWAITING_APPROVAL
        else (None, None, None)
    )
    return status_now(
        deployment.status,
        go_expires_at=deployment.go_expires_at,
        request_status=request_status,
        request_expires_at=request_expires,
        now=now or timezone.now(),
    )


@transaction.atomic
def deployment_go(
    *,
    actor: User,
    deployment: Deployment,
    approval: VerifiedApproval | int,
    reason: str = "",
) -> Deployment:
    """The go: a person holding `deploy` there executes the approved request (never an
    agent: the policy refuses agents `deploy`). The approval is re-verified here; a blackout
    window holds the go unless the request is an approved emergency."""
    environment = deployment.environment
    authorize(
        actor,
        actions.DEPLOYMENT_EXECUTE,
        environment,
        target=deployment_target(deployment),
        requested={"deployment": deployment.pk},
        reason=reason,
    )
    verified = requestable.approval_verify(
        approval,
        action=actions.DEPLOYMENT_EXECUTE.name,
        environment=environment,
        parameters={"deployment": deployment.pk},
    )
    deployment = _lock(deployment)
    if deployment.approval_request_id != verified.request_id:
        raise InvalidTransition(
            f"Request #{verified.request_id} is not deployment #{deployment.pk}'s request "
            f"(#{deployment.approval_request_id}): execute that one."
        )
    now = timezone.now()
    status = current_status(deployment, now=now)
    if status != DeploymentStatus.AWAITING_APPROVAL:
        raise InvalidTransition(f"Deployment #{deployment.pk} is {status}: no go to give.")
    window = requestable.blackout_now(environment, now)
    if window is not None and verified.urgency != EMERGENCY:
        raise BlackoutOpen(
            f"A blackout window is open in {environment.slug}: {window}. Only an approved "
            "emergency deployment gets its go now.",
            blackout=window,
        )
    before = deployment_view(deployment)
    _, expires_at, confirmed_by = _request_facts(verified.request_id)
    deployment.status = DeploymentStatus.GO
    deployment.go_at, deployment.updated_at = now, now
    deployment.go_expires_at = expires_at
    deployment.executed_by = actor
    deployment.approved_by = [u.get_username() for u in verified.approvers]
    if deployment.kind == DeploymentKind.EMERGENCY and deployment.emergency_confirmed_by_id is None:
        deployment.emergency_confirmed_by_id = confirmed_by
    deployment.save()
    DeploymentEvent.objects.create(
        deployment=deployment, at=now, event="go", actor=actor, detail=reason
    )
    audit_record(
        actor=actor,
        action=actions.DEPLOYMENT_EXECUTE.name,
        environment=environment,
        target=deployment_target(deployment),
        before=before,
        after={**deployment_view(deployment), "approval": verified.audit_link()},
        reason=reason,
    )
    return deployment


# --- Outcomes -------------------------------------------------------------------------------


def _start_linked_release(deployment: Deployment, *, actor: User, reason: str) -> str:
    """A deployment linked to a release in draft starts that release (release_start, which
    itself asks for approval where the environment needs it). Answers what happened, for the
    deployment's timeline; a refusal there never undoes the reported success."""
    release = deployment.release
    if release is None:
        return ""
    release = Release.objects.get(pk=release.pk)
    if release.status != "draft":
        return f"release {release.name} is {release.status}: not started"
    from .services import release_start

    try:
        with transaction.atomic():
            started = release_start(
                actor=actor,
                release=release,
                reason=reason or f"deployment #{deployment.pk} succeeded",
            )
    except (Conflict, PermissionDenied, ValidationError) as refused:
        why = getattr(refused, "detail", None) or str(refused)
        return f"release {release.name} not started: {why}"
    return f"release {release.name} is {started.status}"


@transaction.atomic
def deployment_report(
    *,
    actor: User,
    deployment: Deployment,
    event: str,
    detail: str = "",
    smoke_tests: dict[str, int] | None = None,
    reason: str = "",
) -> Deployment:
    """The pipeline reports `started` (only on go), `succeeded` or `failed` (once started),
    or `rolled_back` (after succeeded or failed), with smoke-test counts. A failure in
    production engages nothing by itself: it notifies, linking the on-call page."""
    if event not in EVENTS:
        raise ValidationError({"event": f"must be one of {', '.join(EVENTS)}."})
    errors: dict[str, str] = {}
    detail = clean_text(errors, "detail", detail, limit=MAX_DETAIL, required=False)
    if errors:
        raise ValidationError(errors)
    smoke = clean_smoke_tests(smoke_tests)
    environment = deployment.environment
    authorize(
        actor,
        actions.DEPLOYMENT_REPORT,
        environment,
        target=deployment_target(deployment),
        requested={"deployment": deployment.pk, "event": event, "smoke_tests": smoke},
        reason=reason,
    )
    deployment = _lock(deployment)
    now = timezone.now()
    status = current_status(deployment, now=now)
    refusal = transition_refusal(deployment, status, event)
    if refusal is not None:
        error = {
            "not_go": DeploymentNotReady,
            "expired": DeploymentExpired,
        }.get(refusal.code, InvalidTransition)
        raise error(refusal.detail, deployment_status=status)
    before = deployment_view(deployment)
    deployment.status = TRANSITIONS[(status, event)]
    deployment.updated_at = now
    if event == Event.STARTED:
        deployment.started_at = now
    elif event == Event.SUCCEEDED:
        deployment.finished_at = deployment.succeeded_at = now
    elif event == Event.FAILED:
        deployment.finished_at = now
    else:
        deployment.rolled_back_at = now
    if smoke is not None:
        deployment.smoke_passed, deployment.smoke_failed = smoke["passed"], smoke["failed"]
    deployment.save()
    DeploymentEvent.objects.create(
        deployment=deployment, at=now, event=event, detail=detail, smoke_tests=smoke, actor=actor
    )
    audit_record(
        actor=actor,
        action=actions.DEPLOYMENT_REPORT.name,
        environment=environment,
        target=deployment_target(deployment),
        before=before,
        after={**deployment_view(deployment), "event": event, "detail": detail},
        reason=reason,
    )
    if environment.is_production and event in (Event.FAILED, Event.ROLLED_BACK):
        notify_failure(
            deployment,
            event=FAILED_EVENT if event == Event.FAILED else ROLLED_BACK_EVENT,
            actor=actor,
            detail=detail,
        )
    if event == Event.SUCCEEDED and deployment.release_id is not None:
        outcome = _start_linked_release(deployment, actor=actor, reason=reason)
        if outcome:
            DeploymentEvent.objects.create(
                deployment=deployment, at=now, event="release", detail=outcome, actor=actor
            )
    return deployment
