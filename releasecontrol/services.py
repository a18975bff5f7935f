"""Writes of the core: accounts, role grants, API tokens. Each authorizes, changes and audits
in one transaction."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from guardian.models import UserObjectPermission
from guardian.shortcuts import assign_perm

from . import actions, roles
from .audit import Target, audit_record
from .credentials import credential_new
from .models import ApiToken, Environment, RoleGrant, User, UserKind
from .policy import Action, authorize

# Refresh last_used_at at most this often: it is read on every API request.
TOKEN_LAST_USED_GRANULARITY = dt.timedelta(minutes=1)


def _user_view(user: User) -> dict:
    return {"username": user.username, "kind": user.kind, "is_superuser": user.is_superuser}


@transaction.atomic
def user_create(
    *,
    actor: User,
    username: str,
    kind: str = UserKind.HUMAN,
    password: str | None = None,
    email: str = "",
    is_superuser: bool = False,
    reason: str = "",
) -> User:
    authorize(actor, actions.USER_CREATE, target=Target("user", "", username), reason=reason)
    if kind not in (UserKind.HUMAN, UserKind.AGENT):
        raise ValidationError({"kind": "Accounts are human or agent; there is one system actor."})
    user = User(
        username=username,
        kind=kind,
        email=email,
        is_superuser=is_superuser,
        is_staff=is_superuser,
    )
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.full_clean()
    user.save()
    audit_record(
        actor=actor,
        action=actions.USER_CREATE.name,
        target=Target.of(user, user.username),
        after=_user_view(user),
        reason=reason,
    )
    return user


USER_EDITABLE_FIELDS = ("email", "first_name", "last_name", "is_active")


def _update_fields(
    *,
    actor: User,
    obj: User | Environment,
    allowed: tuple[str, ...],
    changes: dict[str, object],
    action: Action,
    target: Target,
    environment: Environment | None = None,
    secret_fields: tuple[str, ...] = (),
    reason: str,
) -> None:
    """Authorize, lock, validate, save and audit a change of some of `allowed` fields.

    The audit event says of a secret field only whether it was set, replaced or removed."""
    unknown = set(changes) - set(allowed)
    if unknown:
        raise ValidationError(f"These fields cannot be changed here: {sorted(unknown)}")
    authorize(actor, action, environment, target=target, reason=reason)
    type(obj).objects.select_for_update(no_key=True).filter(pk=obj.pk).get()
    obj.refresh_from_db(fields=list(changes))
    before = {field: getattr(obj, field) for field in changes}
    for field, value in changes.items():
        setattr(obj, field, value)
    obj.full_clean()
    obj.save(update_fields=list(changes))
    after = dict(changes)
    for field in secret_fields:
        if field in changes:
            before[field], after[field] = _secret_change(before[field], changes[field])
    audit_record(
        actor=actor,
        action=action.name,
        environment=environment,
        target=target,
        before=before,
        after=after,
        reason=reason,
    )


def _secret_change(old: object, new: object) -> tuple[str, str]:
    before = "set" if old else "not set"
    if not new:
        return before, "not set"
    return before, "replaced" if old and old != new else "set"


@transaction.atomic
def user_update(*, actor: User, user: User, reason: str = "", **changes: object) -> User:
    """Change an account's contact details or deactivate it (a deactivated user cannot act)."""
    _update_fields(
        actor=actor,
        obj=user,
        allowed=USER_EDITABLE_FIELDS,
        changes=changes,
        action=actions.USER_UPDATE,
        target=Target.of(user, user.username),
        reason=reason,
    )
    return user


@transaction.atomic
def user_password_set(*, actor: User, user: User, password: str | None, reason: str = "") -> User:
    """Set an account's password (None: no password sign-in at all). Recorded without it."""
    target = Target.of(user, user.username)
    authorize(actor, actions.USER_PASSWORD_SET, target=target, reason=reason)
    if user.is_system:
        raise ValidationError({"user": "The system actor never signs in."})
    locked = User.objects.select_for_update(no_key=True).get(pk=user.pk)
    before = {"usable_password": locked.has_usable_password()}
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.save(update_fields=["password"])
    audit_record(
        actor=actor,
        action=actions.USER_PASSWORD_SET.name,
        target=target,
        before=before,
        after={"usable_password": user.has_usable_password()},
        reason=reason,
    )
    return user


def _sync_permissions(user: User, environment: Environment) -> None:
    """Make the user's guardian permissions on the environment the union of its grants."""
    wanted: set[str] = set()
    for role in RoleGrant.objects.filter(user=user, environment=environment).values_list(
        "role", flat=True
    ):
        wanted |= roles.role_permissions(role, tier=environment.tier, user_kind=user.kind)
    held = UserObjectPermission.objects.filter(
        user=user,
        content_type__app_label="releasecontrol",
        content_type__model="environment",
        object_pk=str(environment.pk),
        permission__codename__in=roles.ALL_PERMISSIONS,
    ).select_related("permission")
    for row in held:
        if row.permission.codename not in wanted:
            row.delete()
    have = {row.permission.codename for row in held}
    for codename in sorted(wanted - have):
        assign_perm(f"releasecontrol.{codename}", user, environment)


def _environments(role: str, environments: Iterable[Environment] | None) -> list[Environment]:
    if environments is not None:
        return list(environments)
    slugs = roles.DEFAULT_ENVIRONMENTS[role]
    queryset = Environment.objects.all()
    if slugs is not None:
        queryset = queryset.filter(slug__in=slugs)
    return list(queryset)


@transaction.atomic
def role_grant(
    *,
    actor: User,
    user: User,
    role: str,
    environments: Iterable[Environment] | None = None,
    reason: str = "",
) -> list[RoleGrant]:
    """Grant a role on the environments (or the role's defaults); idempotent per environment."""
    if role not in roles.ROLE_PERMISSIONS:
        raise ValidationError(
            {"role": f"Unknown role {role!r}: use one of {sorted(roles.ROLE_PERMISSIONS)}"}
        )
    if user.is_system:
        raise ValidationError({"user": "The system actor holds no roles."})
    grants = []
    for environment in _environments(role, environments):
        target = Target.of(user, user.username)
        authorize(actor, actions.ROLE_GRANT, environment, target=target, reason=reason)
        grant, created = RoleGrant.objects.get_or_create(
            user=user, role=role, environment=environment, defaults={"granted_by": actor}
        )
        _sync_permissions(user, environment)
        if created:
            audit_record(
                actor=actor,
                action=actions.ROLE_GRANT.name,
                environment=environment,
                target=target,
                after={"role": role},
                reason=reason,
            )
        grants.append(grant)
    return grants


@transaction.atomic
def role_revoke(*, actor: User, grant: RoleGrant, reason: str = "") -> None:
    target = Target.of(grant.user, grant.user.username)
    authorize(actor, actions.ROLE_REVOKE, grant.environment, target=target, reason=reason)
    user, environment, role = grant.user, grant.environment, grant.role
    grant.delete()
    _sync_permissions(user, environment)
    audit_record(
        actor=actor,
        action=actions.ROLE_REVOKE.name,
        environment=environment,
        target=target,
        before={"role": role},
        reason=reason,
    )


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    raw: str  # shown once, never stored


@transaction.atomic
def api_token_issue(
    *,
    actor: User,
    user: User,
    name: str = "default",
    expires_in: dt.timedelta | None = None,
    reason: str = "",
) -> IssuedToken:
    authorize(actor, actions.TOKEN_ISSUE, target=Target.of(user, user.username), reason=reason)
    if user.is_system or not user.is_active:
        raise ValidationError({"user": "Tokens are for active people and agent accounts."})
    if expires_in is None:
        expires_in = dt.timedelta(days=settings.API_TOKEN_DEFAULT_DAYS)
    credential = credential_new(ApiToken.PREFIX)
    token = ApiToken.objects.create(
        user=user,
        name=name,
        digest=credential.digest,
        hint=credential.hint,
        expires_at=timezone.now() + expires_in,
    )
    audit_record(
        actor=actor,
        action=actions.TOKEN_ISSUE.name,
        target=Target("apitoken", str(token.pk), f"{user.username}: {name}"),
        after={
            "user": user.username,
            "name": name,
            "hint": token.hint,
            "expires_at": token.expires_at,
        },
        reason=reason,
    )
    return IssuedToken(token, credential.raw)


@transaction.atomic
def api_token_revoke(*, actor: User, token: ApiToken, reason: str = "") -> ApiToken:
    target = Target("apitoken", str(token.pk), f"{token.user.username}: {token.name}")
    authorize(actor, actions.TOKEN_REVOKE, target=target, reason=reason)
    token = ApiToken.objects.select_for_update().get(pk=token.pk)
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit_record(
            actor=actor,
            action=actions.TOKEN_REVOKE.name,
            target=target,
            before={"revoked_at": None},
            after={"revoked_at": token.revoked_at},
            reason=reason,
        )
    return token


def api_token_authenticate(raw: str) -> User | None:
    """The active user a bearer token belongs to, or None. Notes when it was last used."""
    if not raw.startswith(ApiToken.PREFIX):
        return None
    token = (
        ApiToken.objects.usable()
        .select_related("user")
        .filter(digest=ApiToken.digest_of(raw))
        .first()
    )
    if token is None or not token.user.is_active or token.user.is_system:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > TOKEN_LAST_USED_GRANULARITY:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user


ENVIRONMENT_SETTINGS = (
    "approvals_required",
    "require_approval_for_increase",
    "notification_emails",
    "webhook_url",
    "webhook_secret",
)
ENVIRONMENT_SECRETS = ("webhook_secret",)


@transaction.atomic
def environment_configure(
    *, actor: User, environment: Environment, reason: str = "", **changes: object
) -> Environment:
    """Change how many approvals an environment needs, whether increases wait for one, and
    where its notifications go. The webhook secret is recorded as set or replaced, never
    with its value."""
    _update_fields(
        actor=actor,
        obj=environment,
        allowed=ENVIRONMENT_SETTINGS,
        changes=changes,
        action=actions.ENVIRONMENT_CONFIGURE,
        target=Target.of(environment, environment.slug),
        environment=environment,
        secret_fields=ENVIRONMENT_SECRETS,
        reason=reason,
    )
    return environment
