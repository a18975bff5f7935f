"""What each role may do on an environment, as django-guardian permission codenames.

A grant (user, role, environment) becomes the permissions below on that
environment (DESIGN.md's roles table). Two caps apply whatever the role says:
developers and agents hold in production only what prepares and asks (view,
request changes, submit metrics), and an agent account never holds more than
the agent role, however it was granted. Beyond the grants, the policy refuses
agents every action whose permission is in AGENTS_NEVER.
"""

from __future__ import annotations

from .models import Role, Tier, UserKind

VIEW = "view_environment"
CHANGE_FLAGS = "change_flags"
DRIVE_RELEASES = "drive_releases"
OPERATE_KILL_SWITCH = "operate_kill_switch"
REQUEST_CHANGES = "request_changes"
SUBMIT_METRICS = "submit_metrics"
APPROVE_CHANGES = "approve_changes"
DEPLOY = "deploy"
VIEW_AUDIT = "view_audit"
EXPORT_AUDIT = "export_audit"

ALL_PERMISSIONS = frozenset(
    {
        VIEW,
        CHANGE_FLAGS,
        DRIVE_RELEASES,
        OPERATE_KILL_SWITCH,
        REQUEST_CHANGES,
        SUBMIT_METRICS,
        APPROVE_CHANGES,
        DEPLOY,
        VIEW_AUDIT,
        EXPORT_AUDIT,
    }
)

_PREPARES = frozenset({VIEW, CHANGE_FLAGS, DRIVE_RELEASES, REQUEST_CHANGES, SUBMIT_METRICS})

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    Role.RELEASE_MANAGER: ALL_PERMISSIONS,
    Role.ONCALL: ALL_PERMISSIONS - {APPROVE_CHANGES, EXPORT_AUDIT},
    Role.DEVELOPER: _PREPARES,
    Role.AUDITOR: frozenset({VIEW, VIEW_AUDIT, EXPORT_AUDIT}),
    Role.AGENT: _PREPARES,
}

# Not held in production: these roles prepare and ask for production changes.
NOT_ON_PRODUCTION: dict[str, frozenset[str]] = {
    Role.DEVELOPER: frozenset({CHANGE_FLAGS, DRIVE_RELEASES}),
    Role.AGENT: frozenset({CHANGE_FLAGS, DRIVE_RELEASES}),
}

# Whatever an agent account is granted (even these raw permissions), the policy refuses it
# the actions that need them: operating kill switches, approving, deploying.
AGENTS_NEVER = frozenset({OPERATE_KILL_SWITCH, APPROVE_CHANGES, DEPLOY})

# Where a role holds when no environments are named: None is every environment.
DEFAULT_ENVIRONMENTS: dict[str, tuple[str, ...] | None] = dict.fromkeys(ROLE_PERMISSIONS)


def role_permissions(role: str, *, tier: str, user_kind: str) -> frozenset[str]:
    """The permission codenames a role gives on an environment of this tier."""
    if user_kind == UserKind.SYSTEM:
        # The system actor holds no roles; the policy decides for it.
        return frozenset()
    perms = ROLE_PERMISSIONS[role]
    if tier == Tier.PRODUCTION:
        perms = perms - NOT_ON_PRODUCTION.get(role, frozenset())
    if user_kind == UserKind.AGENT and role != Role.AGENT:
        perms = perms & role_permissions(Role.AGENT, tier=tier, user_kind=user_kind)
    return perms
