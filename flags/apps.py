from django.apps import AppConfig


class FlagsConfig(AppConfig):
    """Feature flags per environment, kill switches, the flag board and OFREP."""

    name = "flags"
