from django.apps import AppConfig


class FlagsConfig(AppConfig):
    """Feature flags per environment, kill switches, the flag board and OFREP."""

    name = "flags"

    def ready(self) -> None:
        from releasecontrol.api import api_router_add
        from releasecontrol.dashboard import dashboard_section_register
        from releasecontrol.management.commands.seed_demo import SEED_HOOKS

        from . import actions  # noqa: F401  (registers the flags actions)
        from .api import router
        from .demo import seed_flags
        from .requestables import requestables_register
        from .selectors import environment_flags_summary

        dashboard_section_register(
            "flags", "flags/_dashboard_section.html", environment_flags_summary
        )

        api_router_add("", router)
        requestables_register()

        if seed_flags not in SEED_HOOKS:
            SEED_HOOKS.append(seed_flags)
