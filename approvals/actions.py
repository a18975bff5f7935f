"""The approvals app's registered actions (see releasecontrol.policy).

Executing a request is authorized as the requested action itself (a flag change needs
`change_flags` there), so it has no policy action of its own: `APPROVAL_EXECUTE` is the name
its audit events carry.
"""

from releasecontrol import roles
from releasecontrol.policy import register

APPROVAL_REQUEST_CREATE = register(
    name="approval.request.create",
    # Preparing and asking: what developers and agents do in every environment.
    description="Request approval for a change",
    permission=roles.REQUEST_CHANGES,
    mutates=True,
    reduces_exposure=False,
    production_execution=False,
    approval=False,
    administrative=False,
)
# The system actor opening a request for people to decide (a release stage that needs a go,
# a resume after review): asking changes no exposure; people decide and execute.
APPROVAL_REQUEST_OPEN = register(
    name="approval.request.open",
    description="Open an approval request for automation",
    permission=None,
    mutates=True,
    reduces_exposure=True,
    production_execution=False,
    approval=False,
    administrative=False,
)
APPROVAL_REQUEST_UPDATE = register(
    name="approval.request.update",
    description="Edit an approval request",
    permission=roles.REQUEST_CHANGES,
    mutates=True,
    reduces_exposure=False,
    production_execution=False,
    approval=False,
    administrative=False,
)
APPROVAL_CHECKLIST_SET = register(
    name="approval.checklist.set",
    description="Check a request's checklist item",
    permission=roles.REQUEST_CHANGES,
    mutates=True,
    reduces_exposure=False,
    production_execution=False,
    approval=False,
    administrative=False,
)
APPROVAL_DECIDE = register(
    name="approval.decide",
    description="Decide an approval request",
    permission=roles.APPROVE_CHANGES,
    mutates=True,
    reduces_exposure=False,
    production_execution=False,
    approval=True,
    administrative=False,
)
APPROVAL_CANCEL = register(
    name="approval.cancel",
    # The requester's own request; a release manager's any (checked by the service).
    description="Cancel an approval request",
    permission=roles.REQUEST_CHANGES,
    mutates=True,
    reduces_exposure=True,  # a cancelled request changes nothing
    production_execution=False,
    approval=False,
    administrative=False,
)
APPROVAL_EXPIRE = register(
    name="approval.expire",
    # The beat task's: an expired request changes nothing.
    description="Expire approval requests",
    permission=None,
    mutates=True,
    reduces_exposure=True,
    production_execution=False,
    approval=False,
    administrative=False,
)
APPROVAL_SUSPEND = register(
    name="approval.suspend",
    # The scheduler's, when an approved request cannot run at its window.
    description="Suspend a scheduled approval request",
    permission=None,
    mutates=True,
    reduces_exposure=True,
    production_execution=False,
    approval=False,
    administrative=False,
)
POST_REVIEW_CLOSE = register(
    name="postreview.close",
    description="Close an emergency's post-review",
    permission=roles.APPROVE_CHANGES,
    mutates=True,
    reduces_exposure=False,
    production_execution=False,
    approval=False,
    administrative=False,
)
BLACKOUT_CREATE = register(
    name="blackout.create",
    # Release managers; a person's decision about when things may change.
    description="Create a blackout window",
    permission=roles.APPROVE_CHANGES,
    mutates=True,
    reduces_exposure=False,
    production_execution=False,
    approval=False,
    administrative=False,
)
BLACKOUT_DELETE = register(
    name="blackout.delete",
    # Lets increases through again: never automatic.
    description="Delete a blackout window",
    permission=roles.APPROVE_CHANGES,
    mutates=True,
    reduces_exposure=False,
    production_execution=False,
    approval=False,
    administrative=False,
)
CHECKLIST_TEMPLATE_SAVE = register(
    name="checklist.template.save",
    description="Create or edit a checklist template",
    permission=None,
    mutates=True,
    reduces_exposure=False,
    production_execution=False,
    approval=False,
    administrative=True,
)
CHECKLIST_DEFAULT_SET = register(
    name="checklist.default.set",
    description="Set an environment's default checklist",
    permission=None,
    mutates=True,
    reduces_exposure=False,
    production_execution=False,
    approval=False,
    administrative=True,
)

APPROVAL_EXECUTE = "approval.execute"
