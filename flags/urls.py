"""The flag board and flag pages (namespace `flags`), included at the site root."""

from django.urls import path

from . import action_views, views

app_name = "flags"

STATE = "flags/<str:key>/environments/<slug:environment>/"

urlpatterns = [
    path("flags/", views.board, name="board"),
    path("flags/new", views.flag_create, name="create"),
    path("flags/kill-switches/engage", action_views.kill_switch_engage, name="kill_switch_engage"),
    path(
        "flags/kill-switches/<int:pk>/release",
        action_views.kill_switch_release,
        name="kill_switch_release",
    ),
    path("flags/<str:key>/", views.flag_detail, name="detail"),
    path(STATE, views.state_set, name="state_set"),
    path(STATE + "edit", views.state_edit, name="state_edit"),
    path(STATE + "request", views.state_request, name="state_request"),
    path(STATE + "cell", views.state_cell, name="state_cell"),
    path(STATE + "restore", action_views.state_restore, name="state_restore"),
]
