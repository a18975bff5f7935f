"""Read-only admin for the rollouts models: every write goes through the services."""

from django.contrib import admin

from releasecontrol.admin import ReadOnlyAdmin

from .models import Deployment, Gate, GateEvaluation, Release, Rollback


@admin.register(Release)
class ReleaseAdmin(ReadOnlyAdmin):
    list_display = ("name", "version", "environment", "status", "current_stage_index")
    list_filter = ("environment", "status")


@admin.register(Gate)
class GateAdmin(ReadOnlyAdmin):
    list_display = ("name", "release", "metric", "aggregate", "comparator", "threshold")


@admin.register(GateEvaluation)
class GateEvaluationAdmin(ReadOnlyAdmin):
    list_display = ("gate", "release", "evaluated_at", "outcome", "value", "samples")
    list_filter = ("outcome",)


@admin.register(Rollback)
class RollbackAdmin(ReadOnlyAdmin):
    list_display = ("environment", "created_at", "actor", "restored_at")


@admin.register(Deployment)
class DeploymentAdmin(ReadOnlyAdmin):
    list_display = ("service", "version", "environment", "status", "created_at")
    list_filter = ("environment", "status", "kind")
