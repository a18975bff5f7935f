"""An agent account never presses the big button: refused at the API endpoint, the page and
the command, each refusal in the audit trail, nothing turned off."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from releasecontrol.audit import audit_verify
from releasecontrol.models import AuditEvent, Environment
from rollouts.models import Rollback
from tests.factories import PASSWORD
from tests.rollouts.helpers import flags_on, live_release, mode_of

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def live(release_manager, production):
    return live_release(production, flags_on(release_manager, production)[0])


def untouched(production) -> None:
    assert mode_of("new-checkout", production) == "full"
    assert not Environment.objects.get(pk=production.pk).kill_switch_engaged
    assert not Rollback.objects.exists()
    assert audit_verify().ok


def test_agent__api_endpoint__403_refusal_audited(api_call, agent, production, live):
    response = api_call(
        agent, "POST", "/api/v1/environments/production/rollback", {"reason": "panic"}
    )
    assert response.status_code == 403 and "agent" in response.json()["detail"]
    denied = AuditEvent.objects.get(outcome="denied")
    assert (denied.action, denied.actor, denied.environment_id) == (
        "environment.rollback",
        agent,
        "production",
    )
    untouched(production)


def test_agent__page__its_token_is_no_session_and_its_sign_in_is_refused_and_audited(
    client, api_token_for, agent, production, live
):
    token = api_token_for(agent)
    pressed = client.post(
        "/oncall/production/rollback",
        {"confirm": "production", "reason": "panic"},
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert pressed.status_code == 302 and pressed["Location"].startswith("/accounts/login/")

    signed_in = client.post("/accounts/login/", {"username": agent.username, "password": PASSWORD})
    assert signed_in.status_code == 200 and "_auth_user_id" not in client.session
    refused = AuditEvent.objects.get(outcome="denied")
    assert (refused.actor, refused.action) == (agent, "user.sign_in")
    untouched(production)


def test_agent__command__refused_refusal_audited(agent, production, live):
    with pytest.raises(CommandError, match="agent"):
        call_command("rollback", "production", "--reason", "panic", "--as", agent.username)
    denied = AuditEvent.objects.get(outcome="denied")
    assert (denied.action, denied.actor, denied.reason) == ("environment.rollback", agent, "panic")
    untouched(production)
