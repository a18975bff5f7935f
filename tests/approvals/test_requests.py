"""Making and editing requests: the preview and its hash, revisions that void gos, the
checklist and its evidence, expiry, cancelling."""

import datetime as dt
import hashlib
import json

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from approvals.decisions import approval_decide
from approvals.execution import approval_execute, approval_requests_expire
from approvals.models import ApprovalRequest, Decision
from approvals.services import (
    approval_cancel,
    approval_request_create,
    approval_request_update,
    checklist_item_set,
)
from releasecontrol.errors import Conflict
from releasecontrol.services import environment_configure

from .conftest import START
from .helpers import (
    TEN_PERCENT,
    arrange,
    complete_checklist,
    decide,
    env,
    events,
    flag_state,
    fresh,
    go,
    last_event,
    request_change,
)
from .requestables import FLAG_CHANGE


def test_approval_request_create__agent_in_production__preview_hash_expiry_and_audit(world):
    request = request_change(
        world["ci-bot"],
        risk="high",
        impact="Checkout for 10% of users",
        rollback_plan="Set the flag off (< 1 min)",
    )

    assert (request.status, request.revision, request.requested_by) == (
        "pending",
        1,
        world["ci-bot"],
    )
    assert request.preview == {
        "items": [
            {
                "type": "flag_state",
                "id": f"{flag_state().flag_id}:{env('production').pk}",
                "name": "new-checkout",
                "before": {"mode": "off", "percentage": 0, "allowlist": [], "version": 1},
                "after": {"mode": "percentage", "percentage": 10, "allowlist": []},
            }
        ],
        "reduces_exposure": False,
    }
    # sha256 of the canonical JSON (sorted keys, "," and ":") of what a decision is made on.
    canonical = {
        "action": FLAG_CHANGE,
        "environment": "production",
        "parameters": TEN_PERCENT,
        "preview": request.preview,
        "checklist": [
            {
                "section": "Tests passed",
                "text": "Unit tests passed (X/Y)",
                "required": True,
                "evidence_required": True,
                "checked": False,
                "evidence": "",
            },
            {
                "section": "Monitoring",
                "text": "Dashboards updated",
                "required": False,
                "evidence_required": False,
                "checked": False,
                "evidence": "",
            },
        ],
        "revision": 1,
    }
    expected_hash = hashlib.sha256(
        json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    assert request.preview_hash == expected_hash
    assert request.expires_at == START + dt.timedelta(hours=72)
    event = last_event("approval.request.create")
    assert (event.actor_name, event.environment_id, event.target_id) == (
        "ci-bot",
        "production",
        str(request.pk),
    )
    assert event.after["preview_hash"] == expected_hash
    assert event.after["parameters"] == TEN_PERCENT


def test_approval_request_create__no_checklist_named_in_production__gets_the_deployment_one(
    world,
):
    request = request_change(world["dev"], checklist=None)

    items = list(request.checklist.all())
    assert request.checklist_template.slug == "deployment"
    assert len(items) == 19
    assert {i.section for i in items} == {
        "Changes included",
        "Tests passed",
        "Database changes",
        "Dependencies",
        "Breaking changes",
        "Rollback plan",
        "Monitoring",
    }
    assert [i.text for i in items if i.section == "Monitoring"] == [
        "Alerts configured",
        "Dashboards updated",
        "On-call notified",
    ]


def test_approval_request_create__checklist_none__refused_in_production_allowed_in_staging(
    world,
):
    with pytest.raises(ValidationError) as error:
        request_change(world["dev"], checklist="none")
    assert "checklist" in error.value.message_dict

    request = request_change(world["dev"], "staging", checklist="none")
    assert request.checklist.count() == 0


def test_approval_request_create__window_end_after_ttl__expires_at_window_end(world):
    end = START + dt.timedelta(days=5)
    request = request_change(world["dev"], window_start=end - dt.timedelta(hours=2), window_end=end)
    assert request.expires_at == end


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"parameters": {**TEN_PERCENT, "percentage": 101}}, "percentage"),
        ({"parameters": {**TEN_PERCENT, "colour": "red"}}, "colour"),
        ({"parameters": {**TEN_PERCENT, "flag": "no-such-flag"}}, "parameters.flag"),
        ({"action": "rocket.launch"}, "action"),
        ({"urgency": "whenever"}, "urgency"),
        ({"risk": "none"}, "risk"),
        ({"title": "  "}, "title"),
        ({"window_start": START, "window_end": START}, "window"),
        ({"window_start": START}, "window"),
        ({"checklist": "no-such-template"}, "checklist"),
    ],
)
def test_approval_request_create__bad_input__names_the_field_and_stores_nothing(
    world, change, field
):
    fields = {"parameters": TEN_PERCENT, "action": FLAG_CHANGE, "title": "t", **change}
    with pytest.raises(ValidationError) as error:
        approval_request_create(
            actor=world["dev"],
            environment=env("production"),
            checklist=fields.pop("checklist", "short"),
            **fields,
        )
    assert field in error.value.message_dict
    assert not ApprovalRequest.objects.exists()


@pytest.mark.parametrize("who", ["audrey", "otto"])
def test_approval_request_create__without_request_changes__refused(world, who):
    with pytest.raises(PermissionDenied):
        request_change(world[who])
    assert not ApprovalRequest.objects.exists()


def test_approval_request_update__after_a_go__new_revision_voids_the_go_and_keeps_it(world):
    environment_configure(
        actor=world["root"], environment=env("production"), approvals_required=2, reason="two"
    )
    request = complete_checklist(request_change(world["ci-bot"]), world["ci-bot"])
    request = go(request, world["rhea"])
    old_hash = request.preview_hash

    request = approval_request_update(
        actor=world["ci-bot"],
        request=fresh(request),
        parameters={**TEN_PERCENT, "percentage": 5},
        reason="smaller step",
    )

    assert (request.revision, request.status) == (3, "pending")
    assert request.preview["items"][0]["after"]["percentage"] == 5
    assert request.preview_hash != old_hash
    voided = Decision.objects.get(request=request)
    assert (voided.decider, voided.void, voided.voided_at, voided.revision) == (
        world["rhea"],
        True,
        START,
        2,
    )
    event = last_event("approval.request.update")
    assert (event.actor_name, event.before["revision"], event.after["revision"]) == (
        "ci-bot",
        2,
        3,
    )
    assert event.after["changed"] == ["parameters"]

    # The old hash is stale; the same person's go on the new revision counts again.
    with pytest.raises(Conflict) as error:
        approval_decide(actor=world["rhea"], request=request, decision="go", preview_hash=old_hash)
    assert error.value.code == "stale_preview"
    request = go(request, world["rhea"])
    assert request.status == "pending"  # one valid go of two
    request = go(request, world["ravi"])
    assert request.status == "approved"


def test_approval_request_update__approved_request_edited__back_to_pending_needs_new_gos(world):
    request = complete_checklist(request_change(world["dev"]), world["dev"])
    request = go(request, world["rhea"])
    assert request.status == "approved"

    request = approval_request_update(
        actor=world["dev"], request=fresh(request), title="5% of checkout"
    )

    assert (request.status, request.approved_at) == ("pending", None)
    with pytest.raises(Conflict):
        approval_execute(actor=world["rita"], request=fresh(request), reason="now")
    assert flag_state("production").mode == "off"


def test_approval_request_update__by_someone_else__they_become_an_editor_and_never_decide(world):
    request = complete_checklist(request_change(world["dev"]), world["dev"])

    request = approval_request_update(
        actor=world["rita"], request=fresh(request), mitigation="Watch the error rate"
    )

    assert list(request.editors.all()) == [world["rita"]]
    with pytest.raises(PermissionDenied, match="edited"):
        go(request, world["rita"])
    assert go(request, world["rhea"]).status == "approved"


def test_approval_request_update__changes_requested__edit_returns_it_to_pending(world):
    request = complete_checklist(request_change(world["dev"]), world["dev"])
    request = decide(request, world["rhea"], "adjust", "Start at 5%")
    assert request.status == "changes_requested"

    request = approval_request_update(
        actor=world["dev"], request=fresh(request), parameters={**TEN_PERCENT, "percentage": 5}
    )

    assert request.status == "pending"
    assert go(request, world["rhea"]).status == "approved"


def test_approval_request_update__nothing_changed__no_new_revision_or_event(world):
    request = request_change(world["dev"])

    same = approval_request_update(actor=world["dev"], request=request, title=request.title)

    assert same.revision == 1
    assert not events("approval.request.update").exists()


@pytest.mark.parametrize("state", ["rejected", "executed", "cancelled"])
def test_approval_request_update__closed_request__409(world, clock, state):
    request = arrange(state, world, world["dev"], "production", clock)

    with pytest.raises(Conflict):
        approval_request_update(actor=world["dev"], request=fresh(request), title="again")
    assert fresh(request).revision == request.revision


def test_checklist_item_set__evidence__links_only_http_and_required_evidence_enforced(world):
    request = request_change(world["ci-bot"])
    tests_item = request.checklist.get(required=True)

    for bad in ("javascript:alert(1)", "ftp://ci.example/run/81", "data:text/html,hi"):
        with pytest.raises(ValidationError) as error:
            checklist_item_set(actor=world["ci-bot"], item=tests_item, checked=True, evidence=bad)
        assert "evidence" in error.value.message_dict
    with pytest.raises(ValidationError, match="needs evidence"):
        checklist_item_set(actor=world["ci-bot"], item=tests_item, checked=True)

    item = checklist_item_set(
        actor=world["ci-bot"],
        item=tests_item,
        checked=True,
        evidence="https://ci.example/run/81",
    )

    assert (item.checked, item.checked_by, item.checked_at, item.evidence_link) == (
        True,
        world["ci-bot"],
        START,
        "https://ci.example/run/81",
    )
    assert fresh(request).revision == 2
    event = last_event("approval.checklist.set")
    assert (event.actor_name, event.before["checked"], event.after["checked"]) == (
        "ci-bot",
        False,
        True,
    )
    assert event.after["evidence"] == "https://ci.example/run/81"
    plain = checklist_item_set(actor=world["ci-bot"], item=item, evidence="Unit: 412/412 passed")
    assert (plain.evidence, plain.evidence_link) == ("Unit: 412/412 passed", None)


def test_checklist_item_set__agent_fills_the_whole_deployment_checklist__a_go_then_approves(
    world,
):
    request = request_change(world["ci-bot"], checklist=None)

    for item in request.checklist.all():
        checklist_item_set(actor=world["ci-bot"], item=item, checked=True, evidence="n/a")

    assert go(fresh(request), world["rhea"]).status == "approved"


def test_approval_cancel__requester_or_release_manager__others_refused(world):
    mine = request_change(world["ci-bot"])
    with pytest.raises(PermissionDenied):
        approval_cancel(actor=world["dev"], request=mine)
    assert fresh(mine).status == "pending"

    approval_cancel(actor=world["ci-bot"], request=mine, reason="superseded")
    assert fresh(mine).status == "cancelled"
    event = last_event("approval.cancel")
    assert (event.actor_name, event.before["status"], event.after["status"]) == (
        "ci-bot",
        "pending",
        "cancelled",
    )

    theirs = request_change(world["ci-bot"])
    approval_cancel(actor=world["rita"], request=theirs, reason="wrong flag")
    assert fresh(theirs).status == "cancelled"
    with pytest.raises(Conflict):
        approval_cancel(actor=world["rita"], request=theirs)


# --- Expiry ---------------------------------------------------------------------------------


def test_approval_requests_expire__at_ttl_not_before__edits_do_not_reset_it(world, clock):
    request = request_change(world["dev"])
    clock.shift(dt.timedelta(hours=10))
    approval_request_update(actor=world["dev"], request=fresh(request), title="renamed")
    assert fresh(request).expires_at == START + dt.timedelta(hours=72)

    clock.move_to(START + dt.timedelta(hours=72) - dt.timedelta(seconds=1), tick=False)
    assert approval_requests_expire() == []
    assert fresh(request).status == "pending"

    clock.move_to(START + dt.timedelta(hours=72), tick=False)
    assert approval_requests_expire() == [request.pk]

    assert fresh(request).status == "expired"
    event = last_event("approval.expire")
    assert (event.actor_kind, event.target_id, event.after["status"]) == (
        "system",
        str(request.pk),
        "expired",
    )
    assert approval_requests_expire() == []  # once


def test_approval_execute__approved_but_past_expiry__409_even_before_the_task_runs(world, clock):
    request = go(complete_checklist(request_change(world["dev"]), world["dev"]), world["rhea"])
    clock.shift(dt.timedelta(hours=72))

    with pytest.raises(Conflict, match="expired"):
        approval_execute(actor=world["rita"], request=fresh(request), reason="late")
    assert flag_state().mode == "off"
