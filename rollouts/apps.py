from django.apps import AppConfig


class RolloutsConfig(AppConfig):
    """Releases, rollout plans and metric gates, the gate monitor, emergency rollback and
    restore, and deployments reported by CD pipelines."""

    name = "rollouts"

    def ready(self) -> None:
        from . import actions  # noqa: F401  (registers the rollouts actions)
