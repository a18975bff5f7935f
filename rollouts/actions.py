"""The rollouts app's registered actions (see releasecontrol.policy).

Sections: releases and metrics; emergency rollback and restore; deployments."""

from releasecontrol import roles
from releasecontrol.policy import register

# --- Releases and metrics -----------------------------------------------------------------

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
