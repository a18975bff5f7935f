"""The rollouts app's registered actions (see releasecontrol.policy).

Sections: releases and metrics; emergency rollback and restore; deployments."""

from releasecontrol import roles
from releasecontrol.policy import register

# --- Releases and metrics -----------------------------------------------------------------

# --- Emergency rollback and restore -------------------------------------------------------

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
