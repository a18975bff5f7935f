from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    """Checklists and go/no-go approval requests (see ROADMAP: approvals)."""

    name = "approvals"
