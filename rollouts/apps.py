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
