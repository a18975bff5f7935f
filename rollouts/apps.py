from django.apps import AppConfig


class RolloutsConfig(AppConfig):
    """Releases, rollout plans and metric gates, the gate monitor, emergency rollback and
    restore, and deployments reported by CD pipelines."""

    name = "rollouts"

    def ready(self) -> None:
        # --- Deployments ----------------------------------------------------------------------
        from releasecontrol.api import api_router_add
        from releasecontrol.management.commands.seed_demo import SEED_HOOKS

        from . import (
            actions,  # noqa: F401  (registers the rollouts actions)
            deployment_tasks,  # noqa: F401  (the refresh task)
        )
        from .demo_deployments import seed_deployments
        from .deployment_api import router as deployment_router
        from .deployment_requestables import requestables_register

        requestables_register()
        api_router_add("", deployment_router)
        if seed_deployments not in SEED_HOOKS:
            SEED_HOOKS.append(seed_deployments)
