"""The rollouts pages (namespace `rollouts`), included at the site root: releases under
/releases/, the on-call pages under /oncall/, rollback snapshots under /rollbacks/,
deployments under /deployments/ and the DORA figures at /dora/."""

from django.urls import path

from . import control_views, deployment_views, oncall_views, replay_views, views

app_name = "rollouts"

urlpatterns = [
    # --- Release pages -------------------------------------------------------------------
    path("releases/", views.release_list, name="list"),
    path("releases/<int:pk>/", views.release_detail, name="detail"),
    path("releases/<int:pk>/evaluations", views.release_evaluations, name="evaluations"),
    path("releases/<int:pk>/replay", replay_views.release_replay, name="replay"),
    path("releases/<int:pk>/<slug:step>", control_views.release_control, name="control"),
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
    # --- Deployments ---------------------------------------------------------------------
    path("deployments/", deployment_views.deployment_history, name="deployments"),
    path("deployments/export.csv", deployment_views.deployment_export, name="deployments_csv"),
    path("deployments/<int:pk>/", deployment_views.deployment_detail, name="deployment"),
    path("dora/", deployment_views.dora_page, name="dora"),
]
