"""Deciding, executing, cancelling and closing post-reviews through /api/v1/approvals/{id}/...:
who is refused (403, recorded), what state refuses (409), bad input (400), unknown ids (404).
The rules themselves are tested table by table in test_decide_table.py and
test_execute_table.py; this holds the API to them."""

from __future__ import annotations

import datetime as dt

import pytest

from approvals.blackouts import blackout_window_create
from approvals.models import ApprovalRequest, PostReview
from releasecontrol.models import AuditEvent

from .conftest import START
from .helpers import arrange, complete_checklist, env, flag_state, fresh, request_change
from .test_execution import someone_changes_the_flag

URL = "/api/v1/approvals/{}"


@pytest.fixture
def call(api_call):
    return api_call


def denials(action):
    return list(
        AuditEvent.objects.filter(action=action, outcome="denied").values_list(
            "actor_name", flat=True
        )
    )


def decision(request, decision="go", comment="", preview_hash=None):
    return {
        "decision": decision,
        "comment": comment,
        "preview_hash": preview_hash or fresh(request).preview_hash,
    }


def decide(call, user, request, **fields):
    return call(user, "POST", URL.format(request.pk) + "/decisions", decision(request, **fields))


# --- POST /api/v1/approvals/{id}/decisions ----------------------------------------------------


def test_approval_decide__release_manager_go__200_approved_with_the_valid_go(call, world):
    request = complete_checklist(request_change(world["ci-bot"]), world["ci-bot"])

    response = decide(call, world["rhea"], request, comment="Looks right")

    assert response.status_code == 200, response.json()
    answer = response.json()
    assert (answer["status"], answer["approvals_required"]) == ("approved", 1)
    assert [
        (a["decider"], a["decision"], a["comment"], a["void"]) for a in answer["approvals"]
    ] == [("rhea", "go", "Looks right", False)]
    assert answer["approvals"][0]["preview_hash"] == request.preview_hash
    event = AuditEvent.objects.get(action="approval.decide", outcome="ok")
    assert (event.actor_name, event.after["status"]) == ("rhea", "approved")


@pytest.mark.parametrize(
    ("kind", "status"), [("adjust", "changes_requested"), ("no_go", "rejected")]
)
def test_approval_decide__adjust_or_no_go_with_comment__status_follows(call, world, kind, status):
    request = request_change(world["ci-bot"])
    response = decide(call, world["rhea"], request, decision=kind, comment="Not on a Friday")
    assert response.status_code == 200
    assert response.json()["status"] == status
    assert response.json()["decisions"][0]["comment"] == "Not on a Friday"


@pytest.mark.parametrize("who", ["ci-bot", "rogue-bot", "rita", "omar", "dev", "audrey"])
def test_approval_decide__agent_requester_or_without_approve_changes__403_recorded(
    call, world, who
):
    """rita asked; ci-bot and rogue-bot (an agent holding the release manager role) are
    agents; omar, dev and audrey hold no approve_changes."""
    request = complete_checklist(request_change(world["rita"]), world["rita"])

    response = decide(call, world[who], request)

    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"
    assert denials("approval.decide") == [who]
    assert fresh(request).status == "pending"
    assert not request.decisions.exists()


def test_approval_decide__stale_hash__409_with_the_current_revision_and_hash(call, world):
    request = request_change(world["ci-bot"])
    old_hash = request.preview_hash
    complete_checklist(request, world["ci-bot"])

    response = decide(call, world["rhea"], request, preview_hash=old_hash)

    assert response.status_code == 409
    answer = response.json()
    assert answer["error"] == "stale_preview"
    assert (answer["revision"], answer["preview_hash"]) == (2, fresh(request).preview_hash)
    assert not request.decisions.exists()


@pytest.mark.parametrize(
    "state", ["approved", "changes_requested", "rejected", "cancelled", "executed", "expired"]
)
def test_approval_decide__request_not_pending__409(call, world, clock, state):
    request = arrange(state, world, world["dev"], "production", clock)
    decided = request.decisions.count()

    response = decide(call, world["ravi"], request)

    assert response.status_code == 409
    assert response.json()["error"] == "request_closed"
    assert request.decisions.count() == decided


def test_approval_decide__go_on_incomplete_checklist__400_names_the_items(call, world):
    request = request_change(world["ci-bot"])
    response = decide(call, world["rhea"], request)
    assert response.status_code == 400
    assert "Unit tests passed" in response.json()["detail"]
    assert fresh(request).status == "pending"


@pytest.mark.parametrize(
    ("sent", "names"),
    [
        ({"decision": "maybe"}, "decision"),
        ({"decision": "no_go", "comment": ""}, "comment"),
        ({"preview_hash": ""}, "preview_hash"),
        ({"preview_hash": None}, "preview_hash"),
        ({"approve": True}, "approve"),
    ],
)
def test_approval_decide__bad_input__400_nothing_decided(call, world, sent, names):
    request = complete_checklist(request_change(world["ci-bot"]), world["ci-bot"])
    response = call(
        world["rhea"], "POST", URL.format(request.pk) + "/decisions", {**decision(request), **sent}
    )
    assert response.status_code == 400
    assert names in response.json()["detail"]
    assert not request.decisions.exists()


def test_approval_decide__unknown_request__404(call, world):
    response = call(
        world["rhea"],
        "POST",
        URL.format(999999) + "/decisions",
        {"decision": "go", "comment": "", "preview_hash": "0" * 64},
    )
    assert response.status_code == 404


# --- POST /api/v1/approvals/{id}/execute ----------------------------------------------------------


def execute(call, user, request, reason="Window open"):
    return call(user, "POST", URL.format(request.pk) + "/execute", {"reason": reason})


def test_approval_execute__requester_once_others_approved__200_executed_with_result(
    call, world, clock
):
    request = arrange("approved", world, world["rita"], "production", clock)

    response = execute(call, world["rita"], request)

    assert response.status_code == 200, response.json()
    answer = response.json()
    assert (answer["status"], answer["executed_by"]) == ("executed", "rita")
    assert answer["result"] == {
        "mode": "percentage",
        "percentage": 10,
        "allowlist": [],
        "version": 2,
    }
    assert flag_state().percentage == 10


@pytest.mark.parametrize(
    ("who", "action"),
    [
        ("ci-bot", "approval.execute"),
        ("rogue-bot", "approval.execute"),
        ("dev", "test.flag.change"),
    ],
)
def test_approval_execute__agent_or_developer_in_production__403_recorded(
    call, world, clock, who, action
):
    request = arrange("approved", world, world["dev"], "production", clock)

    response = execute(call, world[who], request)

    assert response.status_code == 403
    assert denials(action) == [who]
    assert fresh(request).status == "approved"
    assert flag_state().mode == "off"


@pytest.mark.parametrize(
    "state", ["pending", "changes_requested", "rejected", "executed", "approved_then_time_passed"]
)
def test_approval_execute__not_approved_or_expired__409(call, world, clock, state):
    request = arrange(state, world, world["dev"], "production", clock)
    response = execute(call, world["omar"], request)
    assert response.status_code == 409
    assert response.json()["error"] == "not_approved"


def test_approval_execute__inside_a_blackout_window__409_names_it(call, world, clock):
    request = arrange("approved", world, world["dev"], "production", clock)
    blackout_window_create(
        actor=world["rita"],
        environment=env("production"),
        starts_at=START - dt.timedelta(hours=1),
        ends_at=START + dt.timedelta(hours=1),
        reason="Payments freeze",
    )

    response = execute(call, world["omar"], request)

    assert response.status_code == 409
    assert response.json()["error"] == "blackout"
    assert "Payments freeze" in response.json()["detail"]
    assert flag_state().mode == "off"


def test_approval_execute__state_drifted__409_says_what_changed(call, world, clock):
    request = arrange("approved", world, world["dev"], "production", clock)
    someone_changes_the_flag(world)

    response = execute(call, world["omar"], request)

    assert response.status_code == 409
    answer = response.json()
    assert answer["error"] == "drifted"
    assert any("new-checkout" in change for change in answer["changes"])
    assert fresh(request).status == "approved"


@pytest.mark.parametrize(("sent", "names"), [({}, "reason"), ({"reason": 3}, "reason")])
def test_approval_execute__no_reason__400(call, world, clock, sent, names):
    request = arrange("approved", world, world["dev"], "production", clock)
    response = call(world["omar"], "POST", URL.format(request.pk) + "/execute", sent)
    assert response.status_code == 400
    assert names in response.json()["detail"]
    assert fresh(request).status == "approved"


# --- POST /api/v1/approvals/{id}/cancel ---------------------------------------------------------


def test_approval_cancel__agent_its_own__200_cancelled_and_audited(call, world):
    request = request_change(world["ci-bot"])

    response = call(world["ci-bot"], "POST", URL.format(request.pk) + "/cancel", {})

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    event = AuditEvent.objects.get(action="approval.cancel", outcome="ok")
    assert event.actor_name == "ci-bot"


def test_approval_cancel__without_a_body__200(call, world):
    request = request_change(world["ci-bot"])
    response = call(world["ci-bot"], "POST", URL.format(request.pk) + "/cancel")
    assert response.status_code == 200, response.json()
    assert fresh(request).status == "cancelled"


def test_approval_cancel__release_manager_anyone_s__200(call, world):
    request = request_change(world["ci-bot"])
    response = call(world["rhea"], "POST", URL.format(request.pk) + "/cancel", {"reason": "dup"})
    assert response.status_code == 200
    assert fresh(request).status == "cancelled"


@pytest.mark.parametrize("who", ["dev", "omar", "audrey"])
def test_approval_cancel__someone_else_s_without_approve_changes__403_recorded(call, world, who):
    request = request_change(world["ci-bot"])
    response = call(world[who], "POST", URL.format(request.pk) + "/cancel", {})
    assert response.status_code == 403
    assert denials("approval.cancel") == [who]
    assert fresh(request).status == "pending"


def test_approval_cancel__agent_someone_else_s__403_recorded(call, world):
    request = request_change(world["dev"])
    response = call(world["ci-bot"], "POST", URL.format(request.pk) + "/cancel", {})
    assert response.status_code == 403
    assert denials("approval.cancel") == ["ci-bot"]
    assert fresh(request).status == "pending"


def test_approval_cancel__already_closed__409_unknown_404(call, world):
    request = request_change(world["ci-bot"])
    call(world["ci-bot"], "POST", URL.format(request.pk) + "/cancel", {})
    again = call(world["ci-bot"], "POST", URL.format(request.pk) + "/cancel", {})
    missing = call(world["ci-bot"], "POST", URL.format(999999) + "/cancel", {})
    assert (again.status_code, missing.status_code) == (409, 404)


# --- POST /api/v1/approvals/{id}/post-review ------------------------------------------------------


@pytest.fixture
def emergency_executed(call, world, clock):
    """An approved emergency, executed through the API inside a blackout window."""
    request = arrange("emergency_approved", world, world["dev"], "production", clock)
    blackout_window_create(
        actor=world["rita"],
        environment=env("production"),
        starts_at=START - dt.timedelta(hours=1),
        ends_at=START + dt.timedelta(hours=1),
        reason="Payments freeze",
    )
    response = execute(call, world["omar"], request, reason="Checkout down")
    assert response.status_code == 200, response.json()
    assert response.json()["post_review"]["closed_at"] is None
    return request


def test_post_review_close__release_manager__200_closed_with_notes(call, world, emergency_executed):
    url = URL.format(emergency_executed.pk) + "/post-review"

    response = call(world["ravi"], "POST", url, {"notes": "Root cause: expired certificate"})

    assert response.status_code == 200, response.json()
    review = response.json()["post_review"]
    assert (review["closed_by"], review["notes"]) == ("ravi", "Root cause: expired certificate")
    assert review["closed_at"] is not None
    again = call(world["ravi"], "POST", url, {"notes": "Again"})
    assert again.status_code == 409


@pytest.mark.parametrize("who", ["ci-bot", "dev", "omar"])
def test_post_review_close__agent_or_without_approve_changes__403_recorded(
    call, world, emergency_executed, who
):
    url = URL.format(emergency_executed.pk) + "/post-review"
    response = call(world[who], "POST", url, {"notes": "Fine"})
    assert response.status_code == 403
    assert denials("postreview.close") == [who]
    assert PostReview.objects.get().closed_at is None


def test_post_review_close__no_notes__400(call, world, emergency_executed):
    url = URL.format(emergency_executed.pk) + "/post-review"
    response = call(world["ravi"], "POST", url, {"notes": "  "})
    assert response.status_code == 400
    assert "notes" in response.json()["detail"]


def test_post_review_close__request_without_one__409_unknown_404(call, world):
    request = request_change(world["dev"])
    none = call(world["ravi"], "POST", URL.format(request.pk) + "/post-review", {"notes": "x"})
    missing = call(world["ravi"], "POST", URL.format(999999) + "/post-review", {"notes": "x"})
    assert (none.status_code, none.json()["error"]) == (409, "no_post_review")
    assert missing.status_code == 404
    assert ApprovalRequest.objects.get().status == "pending"
