"""Execution re-checks drift; the scheduler executes at the window as the system actor and
suspends what cannot run; the verifier core asks for proves exactly one approved change."""

import datetime as dt

import pytest
from django.db import transaction

from approvals.execution import approval_execute, approval_requests_run_scheduled
from approvals.services import approval_request_update
from flags.services import flag_state_set
from releasecontrol import requestable
from releasecontrol.errors import Conflict
from releasecontrol.requestable import ApprovalDrifted, ApprovalInvalid, VerifiedApproval

from .conftest import START
from .helpers import (
    TEN_PERCENT,
    complete_checklist,
    env,
    flag_state,
    fresh,
    go,
    last_event,
    request_change,
)
from .requestables import FLAG_CHANGE, FLAG_CHANGE_MANUAL

HOUR = dt.timedelta(hours=1)


def approved(people, requester="dev", **fields):
    request = complete_checklist(request_change(people[requester], **fields), people[requester])
    return go(request, people["rhea"])


def someone_changes_the_flag(people, percentage=50):
    flag_state_set(
        actor=people["rita"],
        flag=flag_state().flag,
        environment=env("production"),
        mode="percentage",
        percentage=percentage,
        reason="by hand",
    )


def test_approval_execute__state_drifted__409_names_what_changed_and_stays_approved(world):
    request = approved(world)
    someone_changes_the_flag(world)

    with pytest.raises(ApprovalDrifted) as error:
        approval_execute(actor=world["rita"], request=fresh(request), reason="now")

    assert "new-checkout" in error.value.detail
    assert "version 1 -> 2" in error.value.detail
    assert "mode 'off' -> 'percentage'" in error.value.detail
    assert fresh(request).status == "approved"
    assert flag_state().percentage == 50


def test_approval_request_update__after_drift__refreshes_the_preview_and_voids_gos(world):
    request = approved(world)
    someone_changes_the_flag(world)

    request = approval_request_update(actor=world["dev"], request=fresh(request))

    assert request.status == "pending"
    assert request.preview["items"][0]["before"]["version"] == 2
    assert request.decisions.get().void
    approval_execute(actor=world["rita"], request=go(request, world["rhea"]), reason="now")
    assert (flag_state().percentage, flag_state().version) == (10, 3)


def test_approval_requests_run_scheduled__inside_window__system_executes_with_approvers(
    world, clock
):
    request = approved(world, window_start=START + HOUR, window_end=START + 3 * HOUR)

    assert approval_requests_run_scheduled() == []  # before its window
    clock.shift(HOUR)
    assert approval_requests_run_scheduled() == [request.pk]

    request = fresh(request)
    assert (request.status, request.executed_by.username) == ("executed", "system")
    assert flag_state().percentage == 10
    event = last_event("approval.execute")
    assert (event.actor_kind, event.after["approval"]["approvers"]) == ("system", ["rhea"])
    assert "Scheduled window" in event.reason
    assert approval_requests_run_scheduled() == []  # once


def test_approval_requests_run_scheduled__drifted__stays_approved_suspended_with_reason(
    world, clock
):
    request = approved(world, window_start=START, window_end=START + HOUR)
    someone_changes_the_flag(world)

    assert approval_requests_run_scheduled() == []

    request = fresh(request)
    assert request.status == "approved"
    assert "version 1 -> 2" in request.suspended_reason
    event = last_event("approval.suspend")
    assert (event.actor_kind, event.after["suspended_reason"]) == (
        "system",
        request.suspended_reason,
    )
    assert flag_state().percentage == 50
    assert approval_requests_run_scheduled() == []  # not retried while suspended


def test_approval_requests_run_scheduled__approved_after_its_window__does_not_run(world, clock):
    request = request_change(world["dev"], window_start=START, window_end=START + HOUR)
    request = complete_checklist(request, world["dev"])
    clock.shift(2 * HOUR)
    request = go(request, world["rhea"])

    assert approval_requests_run_scheduled() == []
    assert fresh(request).status == "approved"
    assert flag_state().mode == "off"


def test_approval_requests_run_scheduled__alternative_window__runs_there(world, clock):
    request = approved(
        world,
        window_start=START - 2 * HOUR,
        window_end=START - HOUR,
        alternative_window_start=START + HOUR,
        alternative_window_end=START + 2 * HOUR,
    )
    assert approval_requests_run_scheduled() == []
    clock.shift(HOUR)
    assert approval_requests_run_scheduled() == [request.pk]


def test_approval_requests_run_scheduled__action_not_schedulable__never_runs(world):
    request = approved(
        world, action=FLAG_CHANGE_MANUAL, window_start=START, window_end=START + HOUR
    )

    assert approval_requests_run_scheduled() == []
    assert fresh(request).status == "approved"
    assert flag_state().mode == "off"


def test_approval_emergency__declared_by_an_agent__unconfirmed_until_a_persons_go(world):
    request = request_change(world["ci-bot"], urgency="emergency")
    assert request.emergency_confirmed_by is None
    request = complete_checklist(request, world["ci-bot"])

    request = go(request, world["rhea"])

    assert (request.status, request.emergency_confirmed_by) == ("pending", world["rhea"])
    assert go(request, world["ravi"]).status == "approved"


def test_approval_emergency__declared_by_a_person__confirmed_by_them(world):
    request = request_change(world["rita"], urgency="emergency")
    assert request.emergency_confirmed_by == world["rita"]
    request = approval_request_update(actor=world["ci-bot"], request=request, urgency="urgent")
    assert request.emergency_confirmed_by is None


# --- The verifier, as an owning app's service uses it ---------------------------------------


def test_verified_approval__made_by_hand__refused():
    with pytest.raises(TypeError):
        VerifiedApproval(
            request_id=1,
            revision=1,
            approvers=(),
            urgency="routine",
            preview={},
            preview_hash="0" * 64,
            action=FLAG_CHANGE,
            environment_id=1,
        )


def test_approval_verify__approved_request__returns_who_approved_which_revision(world):
    request = approved(world)

    with transaction.atomic():
        verified = requestable.approval_verify(
            request.pk, action=FLAG_CHANGE, environment=env("production"), parameters=TEN_PERCENT
        )
        # Handing it on proves nothing by itself: it is re-verified from the database.
        again = requestable.approval_verify(
            verified, action=FLAG_CHANGE, environment=env("production"), parameters=TEN_PERCENT
        )

    assert (verified.request_id, verified.revision, verified.urgency) == (
        request.pk,
        request.revision,
        "routine",
    )
    assert [u.username for u in verified.approvers] == ["rhea"]
    assert again == verified
    assert verified.audit_link()["approvers"] == ["rhea"]


@pytest.mark.parametrize(
    ("case", "match"),
    [
        ("pending", "not approved"),
        ("other_parameters", "other parameters"),
        ("other_environment", "not test.flag.change in staging"),
        ("other_action", "not test.flag.change.manual"),
        ("drifted", "changed since"),
        ("expired", "expired"),
        ("missing", "no approval request"),
    ],
)
def test_approval_verify__anything_but_this_approved_change__409(world, clock, case, match):
    request = approved(world) if case != "pending" else request_change(world["dev"])
    kwargs = {"action": FLAG_CHANGE, "environment": env("production"), "parameters": TEN_PERCENT}
    request_id = request.pk
    if case == "other_parameters":
        kwargs["parameters"] = {**TEN_PERCENT, "percentage": 100}
    elif case == "other_environment":
        kwargs["environment"] = env("staging")
    elif case == "other_action":
        kwargs["action"] = FLAG_CHANGE_MANUAL
    elif case == "drifted":
        someone_changes_the_flag(world)
    elif case == "expired":
        clock.shift(dt.timedelta(hours=72))
    elif case == "missing":
        request_id = request.pk + 1000

    with transaction.atomic(), pytest.raises(ApprovalInvalid, match=match):
        requestable.approval_verify(request_id, **kwargs)


@pytest.mark.django_db(transaction=True)
def test_approval_verify__outside_a_transaction__refused(world):
    request = approved(world)
    with pytest.raises(RuntimeError):
        requestable.approval_verify(
            request.pk, action=FLAG_CHANGE, environment=env("production"), parameters=TEN_PERCENT
        )


def test_approval_verify__after_execution__no_longer_valid(world):
    request = approved(world)
    approval_execute(actor=world["rita"], request=fresh(request), reason="now")

    with transaction.atomic(), pytest.raises(Conflict, match="executed"):
        requestable.approval_verify(
            request.pk, action=FLAG_CHANGE, environment=env("production"), parameters=TEN_PERCENT
        )


def test_tasks__beat_entries_name_registered_tasks__runs_call_the_services(world, clock):
    from celery import current_app

    from approvals import tasks
    from approvals.schedule import approvals_beat_schedule

    for entry in approvals_beat_schedule(30).values():
        assert entry["task"] in current_app.tasks
    expiring = request_change(world["dev"])
    scheduled = approved(world, window_start=START, window_end=START + HOUR)

    assert tasks.approval_requests_run_scheduled_task.apply().get() == 1
    clock.shift(dt.timedelta(hours=72))
    assert tasks.approval_requests_expire_task.apply().get() == 1

    assert (fresh(scheduled).status, fresh(expiring).status) == ("executed", "expired")
