"""Building deployments in a given state through the real services."""

import datetime as dt

from approvals.decisions import approval_decide
from approvals.execution import approval_execute
from approvals.models import ApprovalRequest
from approvals.services import checklist_item_set
from releasecontrol.models import Environment
from rollouts.deployments import deployment_register, deployment_report
from rollouts.models import Deployment

ARTIFACT = "sha256:" + "ab" * 32
COMMITTED = dt.timedelta(hours=2)


def env(slug: str) -> Environment:
    return Environment.objects.get(slug=slug)


def fresh(deployment: Deployment) -> Deployment:
    return Deployment.objects.select_related("environment").get(pk=deployment.pk)


def register(actor, slug="staging", *, service="checkout-api", version="2.4.0", **fields):
    from django.utils import timezone

    fields.setdefault("commit", "9f1c2ab")
    fields.setdefault("commit_time", timezone.now() - COMMITTED)
    fields.setdefault("artifact", ARTIFACT)
    fields.setdefault("checklist", "none" if slug != "production" else None)
    return deployment_register(
        actor=actor, environment=env(slug), service=service, version=version, **fields
    )


def request_of(deployment: Deployment) -> ApprovalRequest:
    return ApprovalRequest.objects.select_related("environment").get(
        pk=fresh(deployment).approval_request_id
    )


def complete_checklist(deployment: Deployment, actor) -> None:
    for item in request_of(deployment).checklist.filter(required=True, checked=False):
        checklist_item_set(actor=actor, item=item, checked=True, evidence="412/412 passed")


def approve(deployment: Deployment, *deciders) -> ApprovalRequest:
    """Gos from each decider in turn, until the request is approved."""
    for decider in deciders:
        request = request_of(deployment)
        if request.status != "pending":
            break
        approval_decide(
            actor=decider, request=request, decision="go", preview_hash=request.preview_hash
        )
    return request_of(deployment)


def execute(deployment: Deployment, actor, reason="Deploy window") -> Deployment:
    approval_execute(actor=actor, request=request_of(deployment), reason=reason)
    return fresh(deployment)


def report(deployment: Deployment, actor, *events, smoke=None) -> Deployment:
    for event in events:
        deployment = deployment_report(
            actor=actor, deployment=fresh(deployment), event=event, smoke_tests=smoke
        )
    return fresh(deployment)


def staged(actor, *, service="checkout-api", version="2.4.0") -> Deployment:
    """The version succeeded in staging (what a standard production deployment needs)."""
    return report(
        register(actor, "staging", service=service, version=version),
        actor,
        "started",
        "succeeded",
    )


def gone(people, *, version="2.4.0", kind="standard") -> Deployment:
    """A production deployment with its go: registered by the agent, checklist done, gos
    from rita (and rhea, where more are needed), executed by omar (on-call)."""
    if kind == "standard":
        staged(people["ci-bot"], version=version)
    deployment = register(people["ci-bot"], "production", version=version, kind=kind)
    complete_checklist(deployment, people["ci-bot"])
    approve(deployment, people["rita"], people["rhea"])
    return execute(deployment, people["omar"])
