from django.apps import AppConfig


class ReleaseControlConfig(AppConfig):
    name = "releasecontrol"
    verbose_name = "Release Control"

    def ready(self) -> None:
        from . import actions, db  # noqa: F401  (register the core's actions; connection hooks)
