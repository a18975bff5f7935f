"""The rollouts pages (namespace `rollouts`), included at the site root."""

from django.urls import path

from . import oncall_views

app_name = "rollouts"

urlpatterns = [
    # --- Emergency rollback and restore ---------------------------------------------------
    path("oncall/", oncall_views.oncall_index, name="oncall_index"),
    path("oncall/<slug:environment>/", oncall_views.oncall_page, name="oncall"),
    path(
        "oncall/<slug:environment>/rollback", oncall_views.oncall_rollback, name="oncall_rollback"
    ),
    path("oncall/<slug:environment>/partial", oncall_views.oncall_partial, name="oncall_partial"),
    path("rollbacks/<int:pk>/", oncall_views.rollback_detail, name="rollback_detail"),
    path(
        "rollbacks/<int:pk>/restore",
        oncall_views.rollback_restore_request,
        name="rollback_restore_request",
    ),
    # --- (end of emergency rollback and restore) --------------------------------------------
]
