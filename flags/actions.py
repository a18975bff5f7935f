"""The flags app's registered actions (see releasecontrol.policy)."""

from releasecontrol import roles
from releasecontrol.policy import register

FLAG_CREATE = register(
    name="flag.create",
    # A new flag is off everywhere: creating one is a development act, authorized on
    # the first environment of the promotion path.
    description="Create a flag",
    permission=roles.CHANGE_FLAGS,
    mutates=True,
    reduces_exposure=False,
    production_execution=False,
    approval=False,
    administrative=False,
)
FLAG_STATE_SET = register(
    name="flag.state.set",
    description="Change a flag's state",
    permission=roles.CHANGE_FLAGS,
    mutates=True,
    reduces_exposure=None,  # decided by the change itself
    production_execution=True,
    approval=False,
    administrative=False,
)
FLAG_STATE_RESTORE = register(
    name="flag.state.restore",
    description="Restore an earlier flag state",
    permission=roles.CHANGE_FLAGS,
    mutates=True,
    reduces_exposure=None,
    production_execution=True,
    approval=False,
    administrative=False,
)
KILL_SWITCH_ENGAGE = register(
    name="killswitch.engage",
    description="Engage a kill switch",
    permission=roles.OPERATE_KILL_SWITCH,
    mutates=True,
    reduces_exposure=True,
    production_execution=True,
    approval=False,
    administrative=False,
)
KILL_SWITCH_RELEASE = register(
    name="killswitch.release",
    description="Release a kill switch",
    permission=roles.OPERATE_KILL_SWITCH,
    mutates=True,
    # Releasing turns nothing on, but it lets increases through again: never automatic.
    reduces_exposure=False,
    production_execution=True,
    approval=False,
    administrative=False,
)
SDK_KEY_ISSUE = register(
    name="sdkkey.issue",
    description="Issue an SDK key",
    permission=None,
    mutates=True,
    reduces_exposure=False,
    production_execution=False,
    approval=False,
    administrative=True,
)
SDK_KEY_REVOKE = register(
    name="sdkkey.revoke",
    description="Revoke an SDK key",
    permission=None,
    mutates=True,
    reduces_exposure=True,
    production_execution=False,
    approval=False,
    administrative=True,
)
FLAG_UPDATE = register(
    name="flag.update",
    # Name, description, owner, tags: what people read, not what users get.
    description="Edit a flag's description",
    permission=roles.CHANGE_FLAGS,
    mutates=True,
    # Changes nobody's exposure, but it is a person's edit: automation never makes it.
    reduces_exposure=False,
    production_execution=False,
    approval=False,
    administrative=False,
)
FLAG_ARCHIVE = register(
    name="flag.archive",
    # Only a flag that is off everywhere may be archived, so archiving never changes
    # what anyone gets.
    description="Archive or unarchive a flag",
    permission=roles.CHANGE_FLAGS,
    mutates=True,
    reduces_exposure=False,
    production_execution=False,
    approval=False,
    administrative=False,
)
FLAG_ACCEPT = register(
    name="flag.accept",
    # Production serves a non-boolean flag's values only once they are accepted: at creation
    # when the author holds this there, else through an approved request (flags/acceptance.py),
    # so a flag's author without production rights cannot choose what users get there.
    description="Accept a flag's values",
    permission=roles.CHANGE_FLAGS,
    mutates=True,
    reduces_exposure=False,
    production_execution=True,
    approval=False,
    administrative=False,
)
