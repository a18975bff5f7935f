"""manage.py rollback ENVIRONMENT --reason TEXT --as NAME: the environment rollback from a
shell (every flag off, every live release stopped), through the same service, policy and audit
as the API and the on-call page."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from flags.models import FlagState
from flags.services import flag_create, flag_state_set
from releasecontrol.audit import audit_verify
from releasecontrol.models import AuditEvent, Environment
from rollouts.models import Rollback


def rollback(*args: str) -> str:
    out = StringIO()
    call_command("rollback", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def live_flags(release_manager, production, staging):
    """Two flags on in production, one of them on in staging too."""
    checkout = flag_create(actor=release_manager, key="new-checkout", name="New checkout")
    ocr = flag_create(actor=release_manager, key="ocr", name="OCR")
    flag_state_set(
        actor=release_manager, flag=checkout, environment=production, mode="full", reason="go"
    )
    flag_state_set(
        actor=release_manager,
        flag=ocr,
        environment=production,
        mode="percentage",
        percentage=20,
        allowlist=["vip"],
        reason="canary",
    )
    flag_state_set(actor=release_manager, flag=checkout, environment=staging, mode="full")
    return checkout, ocr


def test_rollback__oncall__turns_off_prints_what_and_audits(
    oncall, production, staging, live_flags
):
    output = rollback("production", "--reason", "checkout errors at 4%", "--as", "omar")

    made = Rollback.objects.get()
    assert f"Rolled back production: rollback {made.pk}, turned off 2 flag state(s)" in output
    assert "flag new-checkout: was full" in output
    assert "flag ocr: was percentage 20%, 1 allowlisted" in output
    assert f"Snapshot: /rollbacks/{made.pk}/" in output
    assert set(FlagState.objects.filter(environment=production).values_list("mode", flat=True)) == {
        "off"
    }
    assert FlagState.objects.get(flag=live_flags[0], environment=staging).mode == "full"
    assert Environment.objects.get(pk=production.pk).kill_switch_engaged
    event = AuditEvent.objects.filter(action="killswitch.engage").get()
    assert (event.actor_name, event.environment_id, event.reason) == (
        "omar",
        "production",
        "checkout errors at 4%",
    )
    assert [s["flag"] for s in event.before["states"]] == ["new-checkout", "ocr"]


def test_rollback__second_run__says_already_rolled_back_changes_nothing(
    oncall, release_manager, live_flags
):
    rollback("production", "--reason", "incident", "--as", "omar")

    output = rollback("production", "--reason", "again", "--as", "rita")

    assert "already rolled back by omar" in output and "(incident)" in output
    assert f"Rollback {Rollback.objects.get().pk}." in output
    assert AuditEvent.objects.filter(action="killswitch.engage").count() == 1
    assert AuditEvent.objects.filter(action="environment.rollback").count() == 1


@pytest.mark.django_db(transaction=True)
def test_rollback__as_an_agent__refused_and_the_denial_audited(agent, production, live_flags):
    with pytest.raises(CommandError, match="agent"):
        rollback("production", "--reason", "panic", "--as", "ci-bot")

    denied = AuditEvent.objects.filter(outcome="denied").get()
    assert (denied.action, denied.actor_name, denied.environment_id, denied.reason) == (
        "environment.rollback",
        "ci-bot",
        "production",
        "panic",
    )
    assert FlagState.objects.get(flag=live_flags[0], environment=production).mode == "full"
    assert not Environment.objects.get(pk=production.pk).kill_switch_engaged
    assert audit_verify().ok


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("production", "--reason", "x", "--as", "nobody"), "No account 'nobody'"),
        (("moon", "--reason", "x", "--as", "omar"), "No environment 'moon'"),
        (("production", "--reason", "  ", "--as", "omar"), "Say why"),
    ],
)
def test_rollback__unknown_user_environment_or_empty_reason__command_error(
    oncall, production, args, message
):
    with pytest.raises(CommandError, match=message):
        rollback(*args)
    assert not Environment.objects.get(pk=production.pk).kill_switch_engaged


@pytest.mark.django_db(transaction=True)
def test_rollback__developer__refused(developer, production):
    with pytest.raises(CommandError, match="Refused"):
        rollback("production", "--reason", "x", "--as", "dev")
