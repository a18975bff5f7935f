"""The rollouts app's registered actions (see releasecontrol.policy).

Sections: releases and metrics; emergency rollback and restore; deployments."""

from releasecontrol import roles  # noqa: F401
from releasecontrol.policy import register  # noqa: F401

# --- Releases and metrics -----------------------------------------------------------------

# --- Emergency rollback and restore -------------------------------------------------------

# --- Deployments ----------------------------------------------------------------------------
