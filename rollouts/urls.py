"""The rollouts pages (namespace `rollouts`)."""

from django.urls import path

from . import deployment_views

app_name = "rollouts"

urlpatterns = [
    # --- Deployments -------------------------------------------------------------------------
    path("deployments/", deployment_views.deployment_history, name="deployments"),
    path("deployments/export.csv", deployment_views.deployment_export, name="deployments_csv"),
    path("deployments/<int:pk>/", deployment_views.deployment_detail, name="deployment"),
    path("dora/", deployment_views.dora_page, name="dora"),
]
