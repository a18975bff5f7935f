"""Restore is deliberate: the kill switch a rollback engaged is released only by an executed
rollback.restore request (approved by someone else, executed by a person), which brings the
chosen flag states back as new versions in the same transaction; flag history restores and
plain releases are refused while it holds, naming the request to make."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from approvals.models import ApprovalRequest
from approvals.services import approval_request_create
from flags.models import FlagState, KillSwitch
from flags.services import (
    KillSwitchEngaged,
    KillSwitchHeld,
    flag_state_restore,
    flag_state_set,
    kill_switch_release,
)
from releasecontrol import requestable
from releasecontrol.audit import audit_verify
from releasecontrol.models import AuditEvent, Environment
from rollouts.emergency import environment_rollback
from rollouts.models import Release, Rollback
from tests.rollouts.helpers import (
    flags_on,
    live_release,
    mode_of,
    restore_executed,
    restore_request,
)


@pytest.fixture
def rolled_back(release_manager, oncall, production):
    checkout = flags_on(release_manager, production)[0]
    live_release(production, checkout)
    return environment_rollback(actor=oncall, environment=production, reason="5xx").rollback


def test_kill_switch_release__switch_of_a_rollback__409_names_the_restore_request(
    release_manager, rolled_back
):
    switch = KillSwitch.objects.get()
    with pytest.raises(KillSwitchHeld) as held:
        kill_switch_release(actor=release_manager, switch=switch, reason="fixed")

    assert held.value.context["request"] == {
        "action": "rollback.restore",
        "environment": "production",
        "parameters": {"rollback": rolled_back.pk, "flags": ["calling", "new-checkout", "ocr"]},
    }
    assert "rollback.restore" in held.value.detail
    assert KillSwitch.objects.get().released_at is None
    assert Environment.objects.get(slug="production").kill_switch_engaged


@pytest.mark.django_db(transaction=True)
def test_kill_switch_release__held__refusal_audited(release_manager, rolled_back):
    with pytest.raises(KillSwitchHeld):
        kill_switch_release(actor=release_manager, switch=KillSwitch.objects.get(), reason="ok")
    denied = AuditEvent.objects.get(outcome="denied")
    assert (denied.action, denied.actor, denied.reason) == (
        "killswitch.release",
        release_manager,
        "ok",
    )
    assert denied.after["requested"]["action"] == "rollback.restore"
    assert audit_verify().ok


def test_flag_history_restore__while_held__409_names_the_restore_request(
    release_manager, production, rolled_back
):
    checkout = FlagState.objects.get(flag__key="new-checkout", environment=production).flag
    with pytest.raises(KillSwitchEngaged) as refused:
        flag_state_restore(
            actor=release_manager,
            flag=checkout,
            environment=production,
            to={"mode": "full"},
            reason="bring it back",
        )
    assert refused.value.context["request"]["action"] == "rollback.restore"
    assert f"emergency rollback {rolled_back.pk}" in refused.value.detail


def test_rollback_restore__two_of_three_approved_by_another__back_as_new_versions(
    release_manager, oncall, production, rolled_back
):
    request = restore_request(
        rolled_back, ["calling", "new-checkout"], requester=oncall, approver=release_manager
    )
    preview = {i["id"]: i for i in request.preview["items"]}
    assert preview[str(rolled_back.kill_switch_id)]["before"] == {"engaged": True}
    assert preview["calling@production"]["before"]["mode"] == "off"
    assert preview["calling@production"]["after"] == {
        "mode": "percentage",
        "percentage": 20,
        "allowlist": ["vip-1"],
        "version": 4,
    }
    assert request.preview["reduces_exposure"] is False

    executed = restore_executed(request, oncall)

    assert executed.status == "executed"
    assert not Environment.objects.get(pk=production.pk).kill_switch_engaged
    calling = FlagState.objects.get(flag__key="calling", environment=production)
    assert (calling.mode, calling.percentage, calling.allowlist, calling.version) == (
        "percentage",
        20,
        ["vip-1"],
        4,
    )
    assert mode_of("new-checkout", production) == "full"
    assert mode_of("ocr", production) == "off"  # not chosen
    rollback = Rollback.objects.get()
    assert (rollback.restored_by, rollback.restore_request_id) == (oncall, request.pk)
    assert Release.objects.get().status == "rolled_back"  # a release starts again, never resumes
    released = AuditEvent.objects.get(action="killswitch.release")
    assert released.after["approval"]["request"] == request.pk
    restores = AuditEvent.objects.filter(action="flag.state.restore").order_by("id")
    assert [(e.target_name, e.after["approval"]["approvers"]) for e in restores] == [
        ("calling", ["rita"]),
        ("new-checkout", ["rita"]),
    ]
    done = AuditEvent.objects.get(action="rollback.restore")
    assert [r["flag"] for r in done.after["restored"]] == ["calling", "new-checkout"]
    # Restored: the switch is gone for good; the page's "held" state is over.
    assert requestable.get("rollback.restore").schedulable is False
    assert audit_verify().ok


def test_rollback_restore__state_changed_since_approval__409_nothing_restored(
    release_manager, oncall, production, rolled_back
):
    request = restore_request(rolled_back, ["ocr"], requester=oncall, approver=release_manager)
    ocr = FlagState.objects.get(flag__key="ocr", environment=production).flag
    flag_state_set(actor=oncall, flag=ocr, environment=production, mode="shadow", reason="look")

    with pytest.raises(requestable.ApprovalDrifted, match="ocr"):
        restore_executed(request, oncall)

    assert Environment.objects.get(pk=production.pk).kill_switch_engaged
    assert Rollback.objects.get().restored_at is None


def test_rollback_restore__agent_executes__refused(
    release_manager, oncall, agent, production, rolled_back
):
    request = restore_request(rolled_back, ["ocr"], requester=oncall, approver=release_manager)
    with pytest.raises(PermissionDenied, match="agent"):
        restore_executed(request, agent)
    assert ApprovalRequest.objects.get(pk=request.pk).status == "approved"
    assert Environment.objects.get(pk=production.pk).kill_switch_engaged


def test_rollback_restore__by_hand_with_a_forged_approval__refused(
    release_manager, oncall, production, rolled_back
):
    """The request's approval cannot be replayed into flags' services outside its execution."""
    request = restore_request(rolled_back, ["ocr"], requester=oncall, approver=release_manager)
    with pytest.raises(TypeError):
        requestable.VerifiedApproval(
            request_id=request.pk,
            revision=1,
            approvers=(release_manager,),
            urgency="routine",
            preview=request.preview,
            preview_hash=request.preview_hash,
            action="rollback.restore",
            environment_id=production.pk,
        )
    with pytest.raises(KillSwitchHeld):
        kill_switch_release(actor=oncall, switch=KillSwitch.objects.get(), reason="by hand")


@pytest.mark.parametrize(
    ("parameters", "field"),
    [
        ({"rollback": 999_999, "flags": []}, "parameters.rollback"),
        ({"rollback": "one", "flags": []}, "parameters.rollback"),
        ({"rollback": None, "flags": ["nope"]}, "parameters.rollback"),
        ({"flags": ["x"], "extra": 1}, "parameters.extra"),
    ],
)
def test_rollback_restore_request__bad_parameters__400_naming_the_field(
    oncall, production, rolled_back, parameters, field
):
    parameters = (
        {"rollback": rolled_back.pk, **parameters} if "rollback" not in parameters else parameters
    )
    with pytest.raises(ValidationError) as invalid:
        approval_request_create(
            actor=oncall,
            environment=production,
            action="rollback.restore",
            parameters=parameters,
            title="restore",
        )
    assert field in invalid.value.message_dict


def test_rollback_restore_request__flag_not_in_the_snapshot__400(oncall, production, rolled_back):
    with pytest.raises(ValidationError, match="not in rollback"):
        approval_request_create(
            actor=oncall,
            environment=production,
            action="rollback.restore",
            parameters={"rollback": rolled_back.pk, "flags": ["ocr", "ghost"]},
            title="restore",
        )
