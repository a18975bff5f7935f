"""The core's registered actions. Each app registers its own in its AppConfig.ready()."""

from . import roles
from .policy import register

USER_CREATE = register(
    name="user.create",
    description="Create an account",
    permission=None,
    mutates=True,
    reduces_exposure=False,
    production_execution=False,
    approval=False,
    administrative=True,
)
ROLE_GRANT = register(
    name="role.grant",
    description="Grant a role on an environment",
    permission=None,
    mutates=True,
    reduces_exposure=False,
    production_execution=False,
    approval=False,
    administrative=True,
)
ROLE_REVOKE = register(
    name="role.revoke",
    description="Revoke a role on an environment",
    permission=None,
    mutates=True,
    reduces_exposure=True,
    production_execution=False,
    approval=False,
    administrative=True,
)
TOKEN_ISSUE = register(
    name="token.issue",
    description="Issue a personal API token",
    permission=None,
    mutates=True,
    reduces_exposure=False,
    production_execution=False,
    approval=False,
    administrative=True,
)
TOKEN_REVOKE = register(
    name="token.revoke",
    description="Revoke a personal API token",
    permission=None,
    mutates=True,
    reduces_exposure=True,
    production_execution=False,
    approval=False,
    administrative=True,
)
AUDIT_EXPORT = register(
    name="audit.export",
    description="Export the audit trail",
    permission=roles.EXPORT_AUDIT,
    mutates=False,
    reduces_exposure=None,
    production_execution=False,
    approval=False,
    administrative=False,
)
USER_UPDATE = register(
    name="user.update",
    description="Change an account",
    permission=None,
    mutates=True,
    reduces_exposure=False,
    production_execution=False,
    approval=False,
    administrative=True,
)
ENVIRONMENT_CONFIGURE = register(
    name="environment.configure",
    description="Change an environment's approval settings",
    permission=None,
    mutates=True,
    reduces_exposure=False,
    production_execution=False,
    approval=False,
    administrative=True,
)
AUDIT_READ = register(
    name="audit.read",
    # The explorer, event pages and charts: reading is not recorded, only allowed.
    description="Read the audit trail",
    permission=roles.VIEW_AUDIT,
    mutates=False,
    reduces_exposure=None,
    production_execution=False,
    approval=False,
    administrative=False,
)
AUDIT_VERIFY = register(
    name="audit.verify",
    description="Verify the audit chain",
    permission=roles.EXPORT_AUDIT,
    mutates=False,
    reduces_exposure=None,
    production_execution=False,
    approval=False,
    administrative=False,
)
AUDIT_PACK = register(
    name="audit.pack",
    description="Build an incident audit pack",
    permission=roles.EXPORT_AUDIT,
    mutates=False,
    reduces_exposure=None,
    production_execution=False,
    approval=False,
    administrative=False,
)
USER_PASSWORD_SET = register(
    name="user.password.set",
    description="Set an account's password",
    permission=None,
    mutates=True,
    reduces_exposure=False,
    production_execution=False,
    approval=False,
    administrative=True,
)

# Sign-ins are recorded, not authorized by the policy (they come before any permission):
# names of their audit events.
SIGN_IN = "user.sign_in"
SIGN_IN_LOCKOUT = "user.sign_in_lockout"
