"""Django admin: read-only for the audit trail; grants, accounts and tokens go through services."""

import contextvars

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.forms import AdminPasswordChangeForm, AdminUserCreationForm
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest

from . import services
from .models import ApiToken, AuditEvent, Environment, MonitorHeartbeat, RoleGrant, User
from .notifications.admin import DeliveryAttemptAdmin, NotificationAdmin  # noqa: F401


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "created_at",
        "actor_name",
        "actor_kind",
        "action",
        "outcome",
        "environment",
        "target_type",
        "target_name",
    )
    list_filter = ("outcome", "actor_kind", "environment", "action")
    search_fields = ("actor_name", "action", "target_name", "reason", "request_id")
    date_hierarchy = "created_at"
    show_full_result_count = False


class EnvironmentAdminForm(forms.ModelForm):
    """The webhook secret is write-only: never rendered back; empty keeps the current one."""

    webhook_url = forms.URLField(
        required=False,
        max_length=500,
        assume_scheme="https",
        help_text="Receives each notification as a signed JSON POST.",
    )
    webhook_secret = forms.CharField(
        required=False,
        max_length=200,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Write-only. Leave empty to keep the current secret.",
    )
    remove_webhook_secret = forms.BooleanField(
        required=False, help_text="Remove the secret and the webhook URL with it."
    )

    class Meta:
        model = Environment
        fields = services.ENVIRONMENT_SETTINGS

    def clean_webhook_secret(self) -> str:
        if self.cleaned_data.get("webhook_secret"):
            return self.cleaned_data["webhook_secret"]
        return self.instance.webhook_secret if self.instance.pk else ""

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("remove_webhook_secret"):
            cleaned["webhook_secret"] = cleaned["webhook_url"] = ""
            self.instance.webhook_secret = self.instance.webhook_url = ""
        return cleaned


@admin.register(Environment)
class EnvironmentAdmin(ReadOnlyAdmin):
    """Read-only but for the approval and notification settings, which change through the
    audited service."""

    form = EnvironmentAdminForm
    fields = (
        "name",
        "slug",
        "tier",
        "position",
        "approvals_required",
        "require_approval_for_increase",
        "notification_emails",
        "webhook_url",
        "webhook_secret_state",
        "webhook_secret",
        "remove_webhook_secret",
        "kill_switch_engaged",
        "flags_version",
    )
    _FORM_ONLY = ("remove_webhook_secret",)

    def has_change_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser

    def get_readonly_fields(self, request, obj=None):
        editable = (*services.ENVIRONMENT_SETTINGS, *self._FORM_ONLY)
        return [f for f in self.fields if f not in editable]

    @admin.display(description="Webhook secret")
    def webhook_secret_state(self, obj) -> str:
        return "set" if obj and obj.webhook_secret else "not set"

    def save_model(self, request, obj, form, change) -> None:
        # Compared with what was shown, not with the raw input: an empty secret keeps it.
        changes = {
            f: form.cleaned_data[f]
            for f in services.ENVIRONMENT_SETTINGS
            if f in form.cleaned_data and form.cleaned_data[f] != form.initial.get(f)
        }
        if changes:
            services.environment_configure(
                actor=request.user, environment=obj, reason="changed in admin", **changes
            )

    list_display = (
        "name",
        "slug",
        "tier",
        "position",
        "approvals_required",
        "kill_switch_engaged",
        "flags_version",
    )


@admin.register(MonitorHeartbeat)
class MonitorHeartbeatAdmin(ReadOnlyAdmin):
    list_display = ("name", "beat_at", "hostname")


def _report(request: HttpRequest, error: Exception) -> None:
    text = "; ".join(error.messages) if isinstance(error, ValidationError) else str(error)
    messages.error(request, text)


@admin.register(RoleGrant)
class RoleGrantAdmin(admin.ModelAdmin):
    """Grant and revoke a role on one environment; both are audited services."""

    list_display = ("user", "role", "environment", "granted_by", "granted_at")
    list_filter = ("role", "environment")
    search_fields = ("user__username",)
    fields = ("user", "role", "environment")
    actions = ["revoke_selected"]

    def has_change_permission(self, request, obj=None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def save_model(self, request, obj, form, change) -> None:
        (grant,) = services.role_grant(
            actor=request.user,
            user=obj.user,
            role=obj.role,
            environments=[obj.environment],
            reason="granted in admin",
        )
        obj.pk = grant.pk

    def delete_model(self, request, obj) -> None:
        services.role_revoke(actor=request.user, grant=obj, reason="revoked in admin")

    @admin.action(description="Revoke the selected role grants", permissions=["delete"])
    def revoke_selected(self, request, queryset) -> None:
        for grant in queryset.select_related("user", "environment"):
            try:
                services.role_revoke(actor=request.user, grant=grant, reason="revoked in admin")
            except (PermissionDenied, ValidationError) as error:
                _report(request, error)


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    list_display = (
        "name",
        "user",
        "hint",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    )
    list_filter = ("revoked_at",)
    search_fields = ("user__username", "name")
    actions = ["revoke_selected"]

    def has_change_permission(self, request, obj=None) -> bool:
        # Needed for the action; the change form itself stays read-only.
        return obj is None and request.user.is_superuser

    @admin.action(description="Revoke the selected tokens")
    def revoke_selected(self, request, queryset) -> None:
        for token in queryset.select_related("user"):
            services.api_token_revoke(actor=request.user, token=token, reason="revoked in admin")


class UserCreationForm(AdminUserCreationForm):
    class Meta(AdminUserCreationForm.Meta):
        model = User
        fields = ("username", "kind")


# Who is changing a password: the admin view knows, the form it builds does not.
_password_actor: contextvars.ContextVar[User | None] = contextvars.ContextVar(
    "password_actor", default=None
)


class AuditedPasswordChangeForm(AdminPasswordChangeForm):
    """Saves through services.user_password_set (authorized, audited, never the password)."""

    def save(self, commit: bool = True) -> User:
        actor = _password_actor.get()
        if actor is None:
            raise PermissionDenied("A password is only set by a signed-in administrator.")
        password = (
            self.cleaned_data["password1"] if self.cleaned_data["set_usable_password"] else None
        )
        return services.user_password_set(
            actor=actor, user=self.user, password=password, reason="set in admin"
        )


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    add_form = UserCreationForm
    change_password_form = AuditedPasswordChangeForm
    list_display = ("username", "kind", "email", "is_active", "is_superuser", "last_login")
    list_filter = ("kind", "is_active", "is_superuser")
    fieldsets = (
        (None, {"fields": ("username", "kind")}),
        ("Contact", {"fields": ("first_name", "last_name", "email")}),
        ("Status", {"fields": ("is_active", "is_superuser", "last_login", "date_joined")}),
    )
    add_fieldsets = (
        (None, {"fields": ("username", "kind", "usable_password", "password1", "password2")}),
    )
    readonly_fields = ("kind", "is_superuser", "last_login", "date_joined")

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj else ()

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # deactivate instead: audit events keep pointing at the account

    def user_change_password(self, request, id, form_url=""):
        token = _password_actor.set(request.user)
        try:
            return super().user_change_password(request, id, form_url)
        finally:
            _password_actor.reset(token)

    def save_model(self, request, obj, form, change) -> None:
        if change:
            changes = {
                f: form.cleaned_data[f]
                for f in services.USER_EDITABLE_FIELDS
                if f in form.changed_data
            }
            if changes:
                updated = services.user_update(
                    actor=request.user, user=obj, reason="changed in admin", **changes
                )
                obj.pk = updated.pk
            return
        created = services.user_create(
            actor=request.user,
            username=obj.username,
            kind=form.cleaned_data.get("kind", "human"),
            password=form.cleaned_data.get("password1") or None,
            reason="created in admin",
        )
        obj.pk = created.pk
