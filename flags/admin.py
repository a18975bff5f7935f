"""Django admin for flags: read-only rows; SDK keys are revoked through the audited service."""

from django.contrib import admin

from releasecontrol.admin import ReadOnlyAdmin

from .models import Flag, FlagState, KillSwitch, SdkKey, Tag
from .services import sdk_key_revoke


@admin.register(Flag)
class FlagAdmin(ReadOnlyAdmin):
    list_display = ("key", "name", "type", "owner", "archived", "created_at")
    list_filter = ("type", "archived", "tags")
    search_fields = ("key", "name", "description")


@admin.register(FlagState)
class FlagStateAdmin(ReadOnlyAdmin):
    list_display = (
        "flag",
        "environment",
        "mode",
        "percentage",
        "version",
        "updated_by",
        "updated_at",
    )
    list_filter = ("environment", "mode")
    search_fields = ("flag__key",)
    list_select_related = ("flag", "environment", "updated_by")


@admin.register(KillSwitch)
class KillSwitchAdmin(ReadOnlyAdmin):
    list_display = (
        "environment",
        "scope",
        "flag",
        "tag",
        "engaged_by",
        "engaged_at",
        "released_at",
    )
    list_filter = ("environment", "scope")
    list_select_related = ("environment", "flag", "tag", "engaged_by")


@admin.register(Tag)
class TagAdmin(ReadOnlyAdmin):
    search_fields = ("name",)


@admin.register(SdkKey)
class SdkKeyAdmin(ReadOnlyAdmin):
    list_display = ("name", "environment", "hint", "created_by", "created_at", "revoked_at")
    list_filter = ("environment", "revoked_at")
    actions = ["revoke_selected"]

    def has_change_permission(self, request, obj=None) -> bool:
        # Needed for the action; the change form itself stays read-only.
        return obj is None and request.user.is_superuser

    @admin.action(description="Revoke the selected SDK keys")
    def revoke_selected(self, request, queryset) -> None:
        for key in queryset.select_related("environment"):
            sdk_key_revoke(actor=request.user, key=key, reason="revoked in admin")
