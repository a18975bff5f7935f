"""Production releases through approval requests: start, a stage that needs a go, a closed
start request, an edit that voids the approval."""

import pytest

from approvals.decisions import approval_decide
from approvals.execution import approval_execute
from approvals.models import ApprovalRequest
from approvals.services import approval_cancel, approval_request_create, checklist_item_set
from flags.guards import ApprovalRequired
from flags.models import FlagState
from releasecontrol.models import AuditEvent, User
from releasecontrol.services import role_grant, user_create
from rollouts.models import Release, ReleaseFlag
from rollouts.services import release_advance, release_resume, release_start, release_update
from tests.factories import PASSWORD

NEEDS_GO = {
    "stages": [
        {"name": "canary", "percentage": 5},
        {"name": "half", "percentage": 50, "needs_go": True},
    ]
}


@pytest.fixture
def approver(db):
    user = user_create(actor=User.system(), username="rhea", password=PASSWORD)
    role_grant(actor=User.system(), user=user, role="release_manager")
    return user


def _approved(request_row, approver):
    """The requester completes the checklist (who edits a request never decides it)."""
    request_row = ApprovalRequest.objects.get(pk=request_row.pk)
    checker = request_row.requested_by
    if checker.is_system:
        checker = User.objects.get(username="rita")
    for item in request_row.checklist.filter(required=True):
        checklist_item_set(actor=checker, item=item, checked=True, evidence="https://ci.example/1")
    request_row = ApprovalRequest.objects.get(pk=request_row.pk)
    return approval_decide(
        actor=approver, request=request_row, decision="go", preview_hash=request_row.preview_hash
    )


def _ask(requester, release, action="release.start", **parameters):
    return approval_request_create(
        actor=requester,
        environment=release.environment,
        action=action,
        parameters={"release": release.pk, **parameters},
        title=f"{action} {release.name}",
    )


def test_release_start__production_without_approval__409_names_the_request(
    release_manager, production, make_release
):
    release = make_release(release_manager, production)

    with pytest.raises(ApprovalRequired) as refused:
        release_start(actor=release_manager, release=release, reason="go")

    assert refused.value.context["request"] == {
        "action": "release.start",
        "environment": "production",
        "parameters": {"release": release.pk},
    }


def test_release_start__approved_request_executed__in_progress_following_the_approver(
    release_manager, approver, production, flag, make_release
):
    release = make_release(release_manager, production)
    asked = _ask(release_manager, release)
    release.refresh_from_db()
    assert release.status == "awaiting_approval" and release.pending_request_id == asked.pk
    assert [i["type"] for i in asked.preview["items"]] == ["release", "flag_state"]
    assert asked.preview["items"][1]["after"]["percentage"] == 5

    _approved(asked, approver)
    approval_execute(actor=release_manager, request=asked.pk, reason="approved")

    release.refresh_from_db()
    state = FlagState.objects.get(flag=flag, environment=production)
    assert release.status == "in_progress" and release.approved_by == approver
    assert (state.mode, state.percentage) == ("percentage", 5)
    started = AuditEvent.objects.get(action="release.start")
    assert started.after["approval"]["request"] == asked.pk


def test_release_start_request__cancelled__release_back_to_draft_and_flags_free(
    release_manager, production, make_release
):
    release = make_release(release_manager, production)
    asked = _ask(release_manager, release)

    approval_cancel(actor=release_manager, request=asked, reason="not today")

    release.refresh_from_db()
    assert release.status == "draft" and release.pending_request_id is None
    assert not ReleaseFlag.objects.filter(release=release, live=True).exists()
    assert release.events.last().kind == "returned_to_draft"
    assert AuditEvent.objects.filter(action="release.return_to_draft").exists()


def test_release_advance__system_reaches_a_stage_needing_a_go__opens_a_request(
    release_manager, approver, production, flag, make_release, system_user
):
    release = make_release(release_manager, production, plan=NEEDS_GO)
    asked = _ask(release_manager, release)
    _approved(asked, approver)
    approval_execute(actor=release_manager, request=asked.pk, reason="approved")

    release = release_advance(
        actor=system_user, release=Release.objects.get(pk=release.pk), reason="gates pass"
    )

    go = ApprovalRequest.objects.get(pk=release.pending_request_id)
    assert release.current_stage_index == 0
    assert go.action == "release.advance" and go.requested_by == system_user
    assert go.parameters == {"release": release.pk, "stage": 1}
    assert FlagState.objects.get(flag=flag, environment=production).percentage == 5
    assert AuditEvent.objects.filter(action="approval.request.open", actor=system_user).exists()

    _approved(go, approver)
    approval_execute(actor=release_manager, request=go.pk, reason="go")
    assert FlagState.objects.get(flag=flag, environment=production).percentage == 50


def test_release_update__live_production_release__pauses_and_voids_the_approval(
    release_manager, approver, developer, production, make_release
):
    release = make_release(release_manager, production)
    asked = _ask(release_manager, release)
    _approved(asked, approver)
    approval_execute(actor=release_manager, request=asked.pk, reason="approved")

    release = release_update(
        actor=release_manager, release=release, reason="longer canary", dead_man_seconds=600
    )

    assert release.status == "paused" and release.approved_by is None
    assert "longer canary" in release.paused_reason
    with pytest.raises(ApprovalRequired):
        release_resume(actor=release_manager, release=release, reason="again")
    edited = AuditEvent.objects.get(action="release.update")
    assert edited.after["approval_void"] is True
