from django.apps import AppConfig
from django.apps import apps as global_apps
from django.db.models.signals import post_migrate


def _restore_checklist_defaults(sender, apps=global_apps, **kwargs) -> None:
    """Put back the deployment checklist and the environments' defaults after `flush`
    (which empties every table and then sends post_migrate). Idempotent."""
    try:
        apps.get_model("approvals", "EnvironmentApprovalSettings")
    except LookupError:
        return  # migrated back before the tables existed
    from .checklists import checklist_defaults_create

    checklist_defaults_create(apps)


class ApprovalsConfig(AppConfig):
    """Checklists, go/no-go approval requests, blackout windows and post-reviews."""

    name = "approvals"

    def ready(self) -> None:
        from releasecontrol import requestable
        from releasecontrol.api import api_router_add

        from . import actions  # noqa: F401  (registers the approvals actions)
        from .api import router
        from .blackouts import blackout_describe
        from .execution import approval_request_verify

        requestable.verifier_install(approval_request_verify)
        requestable.blackout_lookup_install(blackout_describe)
        post_migrate.connect(_restore_checklist_defaults, sender=self)
        api_router_add("", router)

        from releasecontrol.management.commands.seed_demo import SEED_HOOKS

        from .demo import seed_approvals

        if seed_approvals not in SEED_HOOKS:
            SEED_HOOKS.append(seed_approvals)
