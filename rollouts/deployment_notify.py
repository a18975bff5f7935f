"""What a production failure tells people: outbox rows written in the reporting service's
transaction, linking the environment's on-call page, where the rollback is."""

from __future__ import annotations

from releasecontrol.models import Environment, User
from releasecontrol.notifications.services import notification_enqueue

from .deployment_status import deployment_view, smoke_view
from .models import Deployment

# The environment's on-call page, by path.
ONCALL_PATH = "/oncall/{environment}/"
FAILED_EVENT = "deployment.failed"
ROLLED_BACK_EVENT = "deployment.rolled_back"


def oncall_link(environment: Environment) -> str:
    return ONCALL_PATH.format(environment=environment.slug)


def notify_failure(deployment: Deployment, *, event: str, actor: User, detail: str) -> None:
    environment = deployment.environment
    what = "failed" if event == FAILED_EVENT else "was rolled back"
    smoke = smoke_view(deployment)
    lines = [
        f"Deployment #{deployment.pk} of {deployment.service} {deployment.version} to "
        f"{environment.name} {what}.",
        "",
        f"Reported by: {actor.get_username()}",
        f"Detail: {detail or '-'}",
        f"Smoke tests: {smoke['passed']} passed, {smoke['failed']} failed"
        if smoke
        else "Smoke tests: none reported",
        "",
        "Nothing was engaged automatically. The on-call page offers the rollback:",
        oncall_link(environment),
    ]
    notification_enqueue(
        environment=environment,
        event=event,
        subject=f"[{environment.slug}] {deployment.service} {deployment.version} {what}",
        text="\n".join(lines),
        payload={
            "deployment": deployment_view(deployment),
            "actor": actor.get_username(),
            "detail": detail,
        },
        link=oncall_link(environment),
    )
