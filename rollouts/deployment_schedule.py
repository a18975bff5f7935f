"""Beat entry for closing deployments whose go or request ended. Imports nothing of Django's
models, so settings may read it."""

CLOSE_TASK = "rollouts.deployment_tasks.deployments_close"


def deployments_beat_schedule(interval: float = 30.0) -> dict[str, dict]:
    return {
        "deployments-close": {
            "task": CLOSE_TASK,
            "schedule": interval,
            "options": {"expires": interval},
        },
    }
