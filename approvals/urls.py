"""The approvals pages (namespace `approvals`), included under /approvals/."""

from django.urls import path

from . import blackout_views, views

app_name = "approvals"

urlpatterns = [
    path("", views.inbox, name="inbox"),
    path("badge", views.badge, name="badge"),
    path("<int:pk>/", views.detail, name="detail"),
    path("<int:pk>/decisions", views.decision_make, name="decide"),
    path("<int:pk>/execute", views.execute, name="execute"),
    path("<int:pk>/checklist/<int:item>", views.checklist_set, name="checklist_set"),
    path("<int:pk>/post-review", views.review_close, name="post_review_close"),
    path("blackouts/<slug:slug>/", blackout_views.blackouts, name="blackouts"),
    path("blackouts/<slug:slug>/new", blackout_views.blackout_create, name="blackout_create"),
    path(
        "blackouts/windows/<int:pk>/delete", blackout_views.blackout_delete, name="blackout_delete"
    ),
]
