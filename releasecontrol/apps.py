import importlib

from django.apps import AppConfig
from django.apps import apps as global_apps
from django.db.models.signals import post_migrate


def _restore_core_rows(sender, apps=global_apps, **kwargs) -> None:
    """Put back the system actor and the environments migration 0002 makes.

    `flush` (the test suite's between transactional tests, or an operator's) empties every
    table and then sends post_migrate, as contrib.sites relies on for its default Site;
    without this, nothing could act as the system afterwards. Idempotent.
    """
    try:
        apps.get_model("releasecontrol", "Environment")
    except LookupError:
        return  # migrated back before the tables existed
    migration = importlib.import_module(
        "releasecontrol.migrations.0002_system_user_and_environments"
    )
    migration.create(apps, None)


class ReleaseControlConfig(AppConfig):
    name = "releasecontrol"
    verbose_name = "Release Control"

    def ready(self) -> None:
        from . import actions, db, signin  # noqa: F401  (the core's actions; connection hooks)

        post_migrate.connect(_restore_core_rows, sender=self)
        signin.connect()
