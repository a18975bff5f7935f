"""Who may press the big button and who may execute a restore, as tables: actor kind x role x
environment, through the real services (not only the policy)."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied

from approvals.execution import approval_execute
from releasecontrol.models import Environment, User
from releasecontrol.services import role_grant, user_create
from rollouts.emergency import environment_rollback
from rollouts.models import Rollback
from tests.rollouts.helpers import flags_on, mode_of, restore_request

WHO = ("release_manager", "oncall", "developer", "auditor", "agent", "agent_as_oncall")
# Who may press, per environment (development, staging, production).
PRESS = {
    "release_manager": "DSP",
    "oncall": "DSP",
    "developer": "---",
    "auditor": "---",
    "agent": "---",
    "agent_as_oncall": "---",  # an agent's kind caps any role it is given
}
# Who may execute an approved restore in production.
RESTORE = {"release_manager": True, "oncall": True, "developer": False, "auditor": False}
RESTORE.update(agent=False, agent_as_oncall=False)


def account(request, who: str) -> User:
    if who == "agent_as_oncall":
        user = user_create(actor=User.system(), username="bot-oncall", kind="agent")
        role_grant(actor=User.system(), user=user, role="oncall")
        return user
    return request.getfixturevalue(who)


@pytest.mark.parametrize("who", WHO)
@pytest.mark.parametrize(
    ("letter", "slug"), [("D", "development"), ("S", "staging"), ("P", "production")]
)
def test_environment_rollback__table__who_may_press_where(
    request, release_manager, who, letter, slug
):
    actor = release_manager if who == "release_manager" else account(request, who)
    environment = Environment.objects.get(slug=slug)
    flags_on(release_manager, environment, {"new-checkout": {"mode": "full"}})
    allowed = letter in PRESS[who]
    if allowed:
        assert not environment_rollback(actor=actor, environment=environment, reason="x").already
        assert mode_of("new-checkout", environment) == "off"
    else:
        with pytest.raises(PermissionDenied):
            environment_rollback(actor=actor, environment=environment, reason="x")
        assert mode_of("new-checkout", environment) == "full"
        assert not Rollback.objects.exists()


@pytest.mark.parametrize("who", WHO)
def test_rollback_restore__table__who_may_execute_in_production(
    request, release_manager, oncall, production, who
):
    flags_on(release_manager, production, {"new-checkout": {"mode": "full"}})
    rollback = environment_rollback(actor=oncall, environment=production, reason="x").rollback
    approved = restore_request(
        rollback, ["new-checkout"], requester=oncall, approver=release_manager
    )
    executor = release_manager if who == "release_manager" else account(request, who)
    if RESTORE[who]:
        approval_execute(actor=executor, request=approved.pk, reason="fixed")
        assert mode_of("new-checkout", production) == "full"
    else:
        with pytest.raises(PermissionDenied):
            approval_execute(actor=executor, request=approved.pk, reason="fixed")
        assert mode_of("new-checkout", production) == "off"
        assert Environment.objects.get(pk=production.pk).kill_switch_engaged
