from django.apps import AppConfig


class RolloutsConfig(AppConfig):
    """Releases, rollout plans and metric gates, the gate monitor, emergency rollback and
    restore, and deployments reported by CD pipelines."""

    name = "rollouts"

    def ready(self) -> None:
        from . import actions  # noqa: F401  (registers the rollouts actions)

        self.ready_releases()
        self.ready_release_pages()
        self.ready_emergency()
        self.ready_deployments()

    def ready_releases(self) -> None:
        """Release requestables, the manual-change listener and the releases API."""
        from flags.hooks import state_listener_add
        from releasecontrol.api import api_router_add

        from .api import router as releases_router
        from .listeners import flag_changed_by_hand
        from .requestables import requestables_register

        requestables_register()
        state_listener_add(flag_changed_by_hand)
        api_router_add("", releases_router)

    def ready_release_pages(self) -> None:
        """The dashboard's live releases and the demo release."""
        from releasecontrol.dashboard import dashboard_section_register
        from releasecontrol.management.commands.seed_demo import SEED_HOOKS

        from .demo import seed_releases
        from .presenters import dashboard_releases

        dashboard_section_register(
            "releases", "rollouts/_dashboard_section.html", dashboard_releases
        )
        if seed_releases not in SEED_HOOKS:
            SEED_HOOKS.append(seed_releases)

    def ready_emergency(self) -> None:
        """The environment rollback behind every off button, restore, the on-call section."""
        from flags.holds import environment_rollback_install
        from releasecontrol.api import api_router_add
        from releasecontrol.dashboard import dashboard_section_register

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

    def ready_deployments(self) -> None:
        """The deployment.execute requestable, the deployments API, the demo history."""
        from releasecontrol.api import api_router_add
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
