"""The rollouts app's registered actions (see releasecontrol.policy).

Sections: releases and metrics; emergency rollback and restore; deployments."""

from releasecontrol import roles
from releasecontrol.policy import register

# --- Releases and metrics -----------------------------------------------------------------


def _release_action(
    name: str,
    description: str,
    *,
    reduces: bool | None,
    execution: bool,
    permission: str = roles.DRIVE_RELEASES,
):
    return register(
        name=name,
        description=description,
        permission=permission,
        mutates=True,
        reduces_exposure=reduces,
        production_execution=execution,
        approval=False,
        administrative=False,
    )


# Preparing a release changes no flag: like asking for a go, what developers and agents do in
# every environment (request_changes). Starting, advancing and resuming increase exposure;
# pausing, halving and rolling back only reduce it, so automation may always take them.
RELEASE_CREATE = _release_action(
    "release.create",
    "Prepare a release",
    reduces=False,
    execution=False,
    permission=roles.REQUEST_CHANGES,
)
RELEASE_UPDATE = _release_action(
    "release.update",
    "Edit a release",
    reduces=False,
    execution=False,
    permission=roles.REQUEST_CHANGES,
)
RELEASE_START = _release_action("release.start", "Start a release", reduces=False, execution=True)
RELEASE_ADVANCE = _release_action(
    "release.advance", "Advance a release to its next stage", reduces=False, execution=True
)
RELEASE_RESUME = _release_action(
    "release.resume", "Resume a paused release", reduces=False, execution=True
)
RELEASE_PAUSE = _release_action("release.pause", "Pause a release", reduces=True, execution=True)
RELEASE_HALVE = _release_action(
    "release.halve", "Halve a release's exposure", reduces=True, execution=True
)
RELEASE_ROLLBACK = _release_action(
    "release.rollback", "Roll back a release", reduces=True, execution=True
)
# A start request that was rejected, expired or cancelled: the release is a draft again.
RELEASE_RETURN_TO_DRAFT = _release_action(
    "release.return_to_draft", "Return a release to draft", reduces=True, execution=False
)
# Recorded, not authorized (the request's opening was): a start request opened for a release.
START_REQUESTED = "release.start_requested"
# Recorded when a person's direct change of a release's flag paused the release.
PAUSED_BY_HAND = "release.paused_by_flag_change"
METRICS_SUBMIT = register(
    name="metrics.submit",
    description="Submit metric samples",
    permission=roles.SUBMIT_METRICS,
    mutates=True,
    # A sample changes no flag; failure evidence can only reduce exposure, and success
    # evidence counts in production only from accounts the release does not belong to.
    reduces_exposure=True,
    production_execution=False,
    approval=False,
    administrative=False,
)

# --- Emergency rollback and restore -------------------------------------------------------

ENVIRONMENT_ROLLBACK = register(
    name="environment.rollback",
    # The big button: the environment kill switch, every flag off, every live release rolled
    # back, in one transaction. Break-glass: no approval, never an agent's.
    description="Roll an environment back",
    permission=roles.OPERATE_KILL_SWITCH,
    mutates=True,
    reduces_exposure=True,
    production_execution=True,
    approval=False,
    administrative=False,
)
ROLLBACK_RESTORE = register(
    name="rollback.restore",
    # Releases the rollback's kill switch and brings chosen states back: only through an
    # approved request, executed by a person.
    description="Restore from a rollback's snapshot",
    permission=roles.OPERATE_KILL_SWITCH,
    mutates=True,
    reduces_exposure=False,
    production_execution=True,
    approval=False,
    administrative=False,
)

# --- Deployments ----------------------------------------------------------------------------
# A CD pipeline (an agent account, usually) registers, reports and cancels; a person with
# `deploy` gives the go by executing the approved deployment.execute request.
DEPLOYMENT_REGISTER = register(
    name="deployment.register",
    description="Register a deployment",
    permission=roles.REQUEST_CHANGES,
    mutates=True,
    reduces_exposure=False,
    production_execution=False,
    approval=False,
    administrative=False,
)
DEPLOYMENT_REPORT = register(
    name="deployment.report",
    # The pipeline says what happened; reporting changes nothing that is served.
    description="Report a deployment's outcome",
    permission=roles.REQUEST_CHANGES,
    mutates=True,
    reduces_exposure=False,
    production_execution=False,
    approval=False,
    administrative=False,
)
DEPLOYMENT_CANCEL = register(
    name="deployment.cancel",
    description="Cancel a deployment",
    permission=roles.REQUEST_CHANGES,
    mutates=True,
    reduces_exposure=True,  # a cancelled deployment changes nothing
    production_execution=False,
    approval=False,
    administrative=False,
)
DEPLOYMENT_EXECUTE = register(
    name="deployment.execute",
    description="Give a deployment its go",
    permission=roles.DEPLOY,
    mutates=True,
    reduces_exposure=False,
    production_execution=True,
    approval=False,
    administrative=False,
)
DEPLOYMENT_CLOSE = register(
    name="deployment.close",
    # The refresh task's: a go not started in time expires, a deployment whose request was
    # rejected, cancelled or expired is closed the same way. Closing changes nothing served.
    description="Close deployments whose go or request ended",
    permission=None,
    mutates=True,
    reduces_exposure=True,
    production_execution=False,
    approval=False,
    administrative=False,
)
DEPLOYMENT_IMPORT = register(
    name="deployment.import",
    # Past deployments brought in from another tool (or the demo data), for the history and
    # DORA figures: an operator's act, changing nothing that is served.
    description="Import past deployments",
    permission=None,
    mutates=True,
    reduces_exposure=True,
    production_execution=False,
    approval=False,
    administrative=True,
)
