from django.apps import AppConfig


class RolloutsConfig(AppConfig):
    """Releases, rollout plans and metric gates (see ROADMAP: staged rollouts)."""

    name = "rollouts"
