"""The gate monitor in production, on a frozen clock: it follows only the plan a human
approved. A stage that needs a go makes it open a `release.advance` request (once), and a
person's execution of the approved request advances; samples from the release's own requester
never count toward a success, so they never advance it."""

import pytest

from approvals.decisions import approval_decide
from approvals.execution import approval_execute
from approvals.models import ApprovalRequest
from approvals.services import approval_request_create, checklist_item_set
from flags.models import Mode
from releasecontrol.models import UserKind
from rollouts.models import Release, ReleaseEventKind, ReleaseStatus
from rollouts.services import release_create
from tests.conftest import _account
from tests.rollouts.monitor_support import START, flag_state, fresh, gate, run, system_events

pytestmark = pytest.mark.django_db

PLAN = [
    {"name": "canary", "mode": "percentage", "percentage": 5, "hold_seconds": 120},
    {"name": "full", "mode": "full", "percentage": 100, "hold_seconds": 0, "needs_go": True},
]


@pytest.fixture
def clock(time_machine):
    time_machine.move_to(START, tick=False)
    return time_machine


@pytest.fixture
def approver(db):
    return _account("rhea", "release_manager")


@pytest.fixture
def monitoring(db):
    """The account the metrics come from: not the release's requester."""
    return _account("prometheus-push", "agent", agent=True)


def approved(request: ApprovalRequest, requester, approver) -> ApprovalRequest:
    for item in request.checklist.filter(required=True, checked=False):
        checklist_item_set(
            actor=requester, item=item, checked=True, evidence="https://ci.example.com/run/1"
        )
    request = ApprovalRequest.objects.get(pk=request.pk)
    return approval_decide(
        actor=approver, request=request, decision="go", preview_hash=request.preview_hash
    )


def production_release(requester, approver, production, *, gates=None) -> Release:
    from flags.services import flag_create

    flag = flag_create(actor=requester, key="new-checkout", name="New checkout")
    release = release_create(
        actor=requester,
        name="checkout-v2",
        version="2.4.0",
        environment=production,
        flags=[flag],
        plan=PLAN,
        gates=gates or [gate()],
        dead_man_seconds=3600,
        reason="ship it",
    )
    request = approval_request_create(
        actor=requester,
        environment=production,
        action="release.start",
        parameters={"release": release.pk},
        title="Start checkout-v2",
    )
    approval_execute(actor=requester, request=approved(request, requester, approver), reason="go")
    return fresh(release)


def test_monitor_tick__production_stage_needs_a_go__opens_one_request_and_a_human_advances(
    clock, release_manager, approver, monitoring, production
):
    release = production_release(release_manager, approver, production)
    assert (release.status, flag_state("new-checkout", production).percentage) == (
        ReleaseStatus.IN_PROGRESS,
        5,
    )

    run(clock, 300, release=release, value=1.0, by=monitoring)

    release = fresh(release)
    assert release.current_stage_index == 0  # waits for the go
    [go_request] = ApprovalRequest.objects.filter(action="release.advance")
    assert release.pending_request_id == go_request.pk
    assert go_request.requested_by.kind == UserKind.SYSTEM
    assert release.events.filter(kind=ReleaseEventKind.GO_REQUESTED).count() == 1
    assert flag_state("new-checkout", production).percentage == 5

    approval_execute(
        actor=release_manager,
        request=approved(go_request, release_manager, approver),
        reason="metrics look good",
    )

    release = fresh(release)
    assert release.current_stage_index == 1
    assert flag_state("new-checkout", production).mode == Mode.FULL
    assert system_events("release.advance", release) == []  # the person advanced, not the system


def test_monitor_tick__production_samples_only_from_the_requester__never_advance(
    clock, release_manager, approver, production
):
    release = production_release(
        release_manager, approver, production, gates=[gate(no_data="fail", failures_to_act=50)]
    )

    run(clock, 600, release=release, value=1.0, by=release_manager)

    release = fresh(release)
    assert release.current_stage_index == 0
    assert flag_state("new-checkout", production).percentage == 5
    assert not ApprovalRequest.objects.filter(action="release.advance").exists()
    assert release.gates.get().last_outcome != "success"
