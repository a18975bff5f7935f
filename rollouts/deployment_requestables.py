"""`deployment.execute` (releasecontrol.requestable): the go for one registered deployment,
`{"deployment": id}`. Never schedulable: a person gives the go.

Its preview names the service, the version and artifact that would run, what runs there now
(the last success of that service in the environment) and the last deployment's outcome. The
"before" is what the approvers saw: if another deployment of the service finishes meanwhile,
the approval has drifted and executing it answers 409 naming what changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError

from releasecontrol import requestable
from releasecontrol.models import Environment, User
from releasecontrol.requestable import VerifiedApproval

from . import actions
from .deployment_selectors import service_state
from .models import Deployment

PARAMETERS = ("deployment",)


def execute_parameters(raw: Mapping[str, Any]) -> dict[str, Any]:
    errors = {
        f"parameters.{name}": "unknown parameter (send only deployment)"
        for name in raw
        if name not in PARAMETERS
    }
    pk = raw.get("deployment")
    if isinstance(pk, bool) or not isinstance(pk, int) or pk < 1:
        errors["parameters.deployment"] = "required: the deployment's id"
    elif not Deployment.objects.filter(pk=pk).exists():
        errors["parameters.deployment"] = f"there is no deployment {pk}"
    if errors:
        raise ValidationError(errors)
    return {"deployment": pk}


def _outcome(deployment: Deployment | None) -> str | None:
    if deployment is None:
        return None
    return f"{deployment.version} {deployment.status} (deployment #{deployment.pk})"


def execute_preview(environment: Environment, parameters: dict[str, Any]) -> dict[str, Any]:
    deployment = Deployment.objects.select_related("environment").get(pk=parameters["deployment"])
    if deployment.environment_id != environment.pk:
        raise ValidationError(
            {
                "parameters.deployment": f"deployment {deployment.pk} is to "
                f"{deployment.environment.slug}, not {environment.slug}"
            }
        )
    state = service_state(
        environment=environment, service=deployment.service, exclude=deployment.pk
    )
    running = state.running
    last = _outcome(state.last)
    return {
        "items": [
            {
                "type": "deployment",
                "id": f"{deployment.service}@{environment.slug}",
                "name": f"{deployment.service} in {environment.slug}",
                "before": {
                    "running": running.version if running else None,
                    "artifact": running.artifact if running else None,
                    "commit": running.commit if running else None,
                    "last_deployment": last,
                },
                "after": {
                    "running": deployment.version,
                    "artifact": deployment.artifact,
                    "commit": deployment.commit,
                    "last_deployment": last,
                    "kind": deployment.kind,
                },
            }
        ],
        "reduces_exposure": False,
        "deployment": deployment.pk,
    }


def execute_requested(
    *,
    actor: User,
    environment: Environment,
    parameters: dict[str, Any],
    approval: VerifiedApproval,
    reason: str,
) -> dict[str, Any]:
    from .deployments import deployment_go

    deployment = Deployment.objects.select_related("environment").get(pk=parameters["deployment"])
    done = deployment_go(actor=actor, deployment=deployment, approval=approval, reason=reason)
    return {
        "deployment": done.pk,
        "status": done.status,
        "go_expires_at": done.go_expires_at,
    }


def requestables_register() -> None:
    """Called from RolloutsConfig.ready()."""
    requestable.register(
        name=actions.DEPLOYMENT_EXECUTE.name,
        parameters=execute_parameters,
        preview=execute_preview,
        executor=execute_requested,
        schedulable=False,
    )
