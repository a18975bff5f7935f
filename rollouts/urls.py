"""The release pages (namespace `rollouts`), included under /releases/."""

from django.urls import path

from . import control_views, replay_views, views

app_name = "rollouts"

urlpatterns = [
    # --- Release pages -------------------------------------------------------------------
    path("", views.release_list, name="list"),
    path("<int:pk>/", views.release_detail, name="detail"),
    path("<int:pk>/evaluations", views.release_evaluations, name="evaluations"),
    path("<int:pk>/replay", replay_views.release_replay, name="replay"),
    path("<int:pk>/<slug:step>", control_views.release_control, name="control"),
]
