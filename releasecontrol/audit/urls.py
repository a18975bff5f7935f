"""The auditors' workspace (namespace `audit`), included at /audit/."""

from django.urls import path

from . import views
from .evidence_views import evidence_urlpatterns

app_name = "audit"

urlpatterns = [
    path("", views.explorer, name="explorer"),
    path("events/<int:event_id>/", views.event_detail, name="event"),
    path("export.csv", views.export, {"fmt": "csv"}, name="export_csv"),
    path("export.jsonl", views.export, {"fmt": "jsonl"}, name="export_jsonl"),
    path("charts/", views.charts, name="charts"),
    *evidence_urlpatterns,  # verification and incident packs
]
