"""Django admin for approvals: read-only rows. Requests change through their services, and
checklist templates through checklist_template_save."""

from django.contrib import admin

from releasecontrol.admin import ReadOnlyAdmin

from .models import (
    ApprovalRequest,
    BlackoutWindow,
    ChecklistItem,
    ChecklistTemplate,
    ChecklistTemplateItem,
    Decision,
    EnvironmentApprovalSettings,
    PostReview,
)


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class ChecklistTemplateItemInline(ReadOnlyInline):
    model = ChecklistTemplateItem
    fields = ("position", "section", "text", "required", "evidence_required")


@admin.register(ChecklistTemplate)
class ChecklistTemplateAdmin(ReadOnlyAdmin):
    list_display = ("slug", "name", "updated_at")
    inlines = [ChecklistTemplateItemInline]


@admin.register(EnvironmentApprovalSettings)
class EnvironmentApprovalSettingsAdmin(ReadOnlyAdmin):
    list_display = ("environment", "default_checklist", "checklist_optional")
    list_select_related = ("environment", "default_checklist")


class ChecklistItemInline(ReadOnlyInline):
    model = ChecklistItem
    fields = ("position", "section", "text", "required", "checked", "checked_by", "evidence")


class DecisionInline(ReadOnlyInline):
    model = Decision
    fields = ("revision", "decider", "decision", "comment", "void", "created_at")


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "title",
        "environment",
        "action",
        "status",
        "urgency",
        "risk",
        "revision",
        "requested_by",
        "expires_at",
    )
    list_filter = ("status", "environment", "urgency", "risk")
    search_fields = ("title", "action")
    list_select_related = ("environment", "requested_by")
    inlines = [ChecklistItemInline, DecisionInline]


@admin.register(BlackoutWindow)
class BlackoutWindowAdmin(ReadOnlyAdmin):
    list_display = ("__str__", "kind", "reason", "created_by", "deleted_at")
    list_filter = ("environment", "kind")
    list_select_related = ("environment", "created_by")


@admin.register(PostReview)
class PostReviewAdmin(ReadOnlyAdmin):
    list_display = ("request", "opened_at", "closed_at", "closed_by")
    list_select_related = ("request", "closed_by")
