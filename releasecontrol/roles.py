"""What each role may do on an environment, as django-guardian permission codenames.

A grant (user, role, environment) becomes the permissions below on that
environment. Two caps apply whatever the role says: developers and agents never
change production flags, and an agent account never holds more than the agent
role, however it was granted.
"""

from __future__ import annotations

from .models import Role, Tier, UserKind

VIEW = "view_environment"
CHANGE_FLAGS = "change_flags"
OPERATE_KILL_SWITCH = "operate_kill_switch"
REQUEST_CHANGES = "request_changes"
APPROVE_CHANGES = "approve_changes"
EXPORT_AUDIT = "export_audit"

ALL_PERMISSIONS = frozenset(
    {VIEW, CHANGE_FLAGS, OPERATE_KILL_SWITCH, REQUEST_CHANGES, APPROVE_CHANGES, EXPORT_AUDIT}
)

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    Role.RELEASE_MANAGER: frozenset(
        {VIEW, CHANGE_FLAGS, OPERATE_KILL_SWITCH, REQUEST_CHANGES, APPROVE_CHANGES, EXPORT_AUDIT}
    ),
    Role.ONCALL: frozenset({VIEW, CHANGE_FLAGS, OPERATE_KILL_SWITCH, REQUEST_CHANGES}),
    Role.DEVELOPER: frozenset({VIEW, CHANGE_FLAGS, REQUEST_CHANGES}),
    Role.AUDITOR: frozenset({VIEW, EXPORT_AUDIT}),
    Role.AGENT: frozenset({VIEW, CHANGE_FLAGS, REQUEST_CHANGES}),
}

# Held on development and staging only: these roles ask for production changes.
NOT_ON_PRODUCTION: dict[str, frozenset[str]] = {
    Role.DEVELOPER: frozenset({CHANGE_FLAGS}),
    Role.AGENT: frozenset({CHANGE_FLAGS}),
}

# Where a role holds when no environments are named.
DEFAULT_ENVIRONMENTS: dict[str, tuple[str, ...] | None] = {
    Role.DEVELOPER: ("development", "staging"),
    Role.AGENT: ("development", "staging"),
    Role.RELEASE_MANAGER: None,  # None: every environment
    Role.ONCALL: None,
    Role.AUDITOR: None,
}


def role_permissions(role: str, *, tier: str, user_kind: str) -> frozenset[str]:
    """The permission codenames a role gives on an environment of this tier."""
    perms = ROLE_PERMISSIONS[role]
    if tier == Tier.PRODUCTION:
        perms = perms - NOT_ON_PRODUCTION.get(role, frozenset())
    if user_kind == UserKind.AGENT and role != Role.AGENT:
        perms = perms & role_permissions(Role.AGENT, tier=tier, user_kind=user_kind)
    if user_kind == UserKind.SYSTEM:
        # The system actor holds no roles; the policy decides for it.
        return frozenset()
    return perms
