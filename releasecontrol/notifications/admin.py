"""Admin for the outbox: read-only, every delivery attempt visible."""

from django.contrib import admin

from .models import DeliveryAttempt, Notification


class _ReadOnly:
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class DeliveryAttemptInline(_ReadOnly, admin.TabularInline):
    model = DeliveryAttempt
    fields = ("number", "attempted_at", "outcome", "status_code", "error", "duration_ms")
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(Notification)
class NotificationAdmin(_ReadOnly, admin.ModelAdmin):
    list_display = (
        "id",
        "created_at",
        "environment",
        "event",
        "channel",
        "destination",
        "status",
        "attempts",
        "next_attempt_at",
        "delivered_at",
    )
    list_filter = ("status", "channel", "event", "environment")
    search_fields = ("subject", "event", "last_error")
    date_hierarchy = "created_at"
    list_select_related = ("environment",)
    show_full_result_count = False
    fields = (
        "environment",
        "event",
        "channel",
        "destination",
        "status",
        "attempts",
        "created_at",
        "next_attempt_at",
        "delivered_at",
        "last_error",
        "subject",
        "link",
        "text",
        "payload",
    )
    readonly_fields = fields
    inlines = [DeliveryAttemptInline]


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(_ReadOnly, admin.ModelAdmin):
    list_display = (
        "notification",
        "number",
        "attempted_at",
        "outcome",
        "status_code",
        "error",
        "duration_ms",
    )
    list_filter = ("outcome",)
    list_select_related = ("notification",)
    date_hierarchy = "attempted_at"
    show_full_result_count = False
