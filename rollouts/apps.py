from django.apps import AppConfig


class RolloutsConfig(AppConfig):
    """Releases, rollout plans and metric gates, the gate monitor, emergency rollback and
    restore, and deployments reported by CD pipelines."""

    name = "rollouts"

    def ready(self) -> None:
        # --- Emergency rollback and restore ---------------------------------------------
        from flags.holds import environment_rollback_install
        from releasecontrol.api import api_router_add
        from releasecontrol.dashboard import dashboard_section_register

        from . import actions  # noqa: F401  (registers the rollouts actions)
        from .emergency import environment_rollback
        from .emergency_api import router as emergency_router
        from .oncall_selectors import oncall_dashboard_summary
        from .restore import restore_register

        environment_rollback_install(environment_rollback)
        restore_register()
        api_router_add("", emergency_router)
        dashboard_section_register(
            "oncall", "rollouts/_dashboard_oncall.html", oncall_dashboard_summary
        )
        # --- (end of emergency rollback and restore) --------------------------------------
