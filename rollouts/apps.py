from django.apps import AppConfig


class RolloutsConfig(AppConfig):
    """Releases, rollout plans and metric gates, the gate monitor, emergency rollback and
    restore, and deployments reported by CD pipelines."""

    name = "rollouts"

    def ready(self) -> None:
        # --- Releases and metrics
        from flags.hooks import state_listener_add
        from releasecontrol.api import api_router_add

        from . import actions  # noqa: F401  (registers the rollouts actions)
        from .api import router as releases_router
        from .listeners import flag_changed_by_hand
        from .requestables import requestables_register

        requestables_register()
        state_listener_add(flag_changed_by_hand)
        api_router_add("", releases_router)

        # --- Deployments ----------------------------------------------------------------------
        from releasecontrol.management.commands.seed_demo import SEED_HOOKS

        from . import deployment_tasks  # noqa: F401  (the refresh task)
        from .demo_deployments import seed_deployments
        from .deployment_api import router as deployment_router
        from .deployment_requestables import (
            requestables_register as deployment_requestables_register,
        )

        deployment_requestables_register()
        api_router_add("", deployment_router)
        if seed_deployments not in SEED_HOOKS:
            SEED_HOOKS.append(seed_deployments)
