"""The approvals API (/api/v1/approvals...) through real requests, real tokens and real
PostgreSQL: making, listing, reading and editing requests and their checklists, and the
whole flow an agent and people go through. Deciding, executing, cancelling and
post-reviews: test_api_decisions.py; blackout windows and templates: test_api_blackouts.py."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from approvals.models import ApprovalRequest, Decision
from releasecontrol.models import AuditEvent, IdempotencyKey

from .helpers import TEN_PERCENT, complete_checklist, flag_state, fresh, go, request_change
from .requestables import FLAG_CHANGE

URL = "/api/v1/approvals"


@pytest.fixture
def call(api_call):
    return api_call


def body(**overrides):
    return {
        "environment": "production",
        "action": FLAG_CHANGE,
        "parameters": TEN_PERCENT,
        "title": "10% of checkout",
        "urgency": "routine",
        "risk": "medium",
        "impact": "Checkout for 10% of users",
        "mitigation": "",
        "rollback_plan": "Set the flag off",
        "window": {"start": "2026-03-05T09:00:00Z", "end": "2026-03-05T11:00:00Z"},
        "checklist": "short",
        **overrides,
    }


def create(call, user, **overrides):
    response = call(user, "POST", URL, body(**overrides))
    assert response.status_code == 201, response.json()
    return response.json()


# --- 401 for every endpoint -----------------------------------------------------------------

ENDPOINTS = [
    ("POST", URL),
    ("GET", URL),
    ("GET", URL + "/1"),
    ("PATCH", URL + "/1"),
    ("PATCH", URL + "/1/checklist/1"),
    ("POST", URL + "/1/decisions"),
    ("POST", URL + "/1/execute"),
    ("POST", URL + "/1/cancel"),
    ("POST", URL + "/1/post-review"),
    ("GET", "/api/v1/environments/production/blackouts"),
    ("POST", "/api/v1/environments/production/blackouts"),
    ("DELETE", "/api/v1/blackouts/1"),
    ("GET", "/api/v1/checklists"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
@pytest.mark.parametrize("authorization", [None, "Bearer rcp_not-a-real-token"])
def test_approvals_endpoint__no_valid_token__401_json_nothing_made(
    client, db, method, path, authorization
):
    headers = {"Authorization": authorization} if authorization else {}
    response = client.generic(
        method, path, data="{}", content_type="application/json", headers=headers
    )
    assert response.status_code == 401
    assert response.json()["error"] == "unauthenticated"
    assert not ApprovalRequest.objects.exists()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", URL),
        ("DELETE", URL + "/1"),
        ("GET", URL + "/1/execute"),
        ("GET", "/api/v1/blackouts/1"),
    ],
)
def test_approvals_endpoint__wrong_method__405_json(call, world, method, path):
    response = call(world["dev"], method, path)
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"


# --- POST /api/v1/approvals ---------------------------------------------------------------------


def test_approval_create__agent_in_production__201_with_preview_hash_checklist_and_audit(
    call, world
):
    made = create(call, world["ci-bot"])

    request = ApprovalRequest.objects.get()
    assert made["id"] == request.pk
    assert (made["status"], made["revision"], made["requested_by"]) == ("pending", 1, "ci-bot")
    assert made["preview_hash"] == request.preview_hash and len(made["preview_hash"]) == 64
    assert made["preview"]["items"][0]["before"] == {
        "mode": "off",
        "percentage": 0,
        "allowlist": [],
        "version": 1,
    }
    assert made["preview"]["items"][0]["after"]["percentage"] == 10
    assert made["approvals_required"] == 1
    assert made["approvals"] == made["decisions"] == []
    assert [
        (i["section"], i["required"], i["checked"], i["checked_by"]) for i in made["checklist"]
    ] == [
        ("Tests passed", True, False, None),
        ("Monitoring", False, False, None),
    ]
    assert set(made["checklist"][0]) >= {"id", "section", "text", "required", "checked", "evidence"}
    assert made["window"] == {
        "start": "2026-03-05T09:00:00+00:00",
        "end": "2026-03-05T11:00:00+00:00",
    }
    assert made["alternative_window"] is None
    assert made["expires_at"] == "2026-03-07T10:00:00+00:00"  # created + 72 h
    assert (made["environment"], made["action"], made["parameters"]) == (
        "production",
        FLAG_CHANGE,
        TEN_PERCENT,
    )
    assert (made["title"], made["risk"], made["rollback_plan"]) == (
        "10% of checkout",
        "medium",
        "Set the flag off",
    )
    event = AuditEvent.objects.get(action="approval.request.create")
    assert (event.actor_name, event.target_id, event.outcome) == ("ci-bot", str(request.pk), "ok")


def test_approval_create__checklist_omitted_in_production__the_deployment_checklist(call, world):
    made = create(call, world["dev"], checklist=None)
    assert made["checklist_template"] == "deployment"
    assert len(made["checklist"]) == 19
    assert made["checklist"][0]["section"] == "Changes included"


def test_approval_create__no_checklist__refused_in_production_allowed_in_staging(call, world):
    refused = call(world["dev"], "POST", URL, body(checklist="none"))
    assert refused.status_code == 400
    assert "checklist" in refused.json()["detail"]

    made = create(call, world["dev"], environment="staging", checklist="none")
    assert made["checklist"] == [] and made["checklist_template"] is None


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        ({"action": "flag.nuke"}, "action"),
        ({"title": ""}, "title"),
        ({"title": 12}, "title"),
        ({"urgency": "asap"}, "urgency"),
        ({"parameters": {"flag": "new-checkout", "mode": "loud"}}, "mode"),
        ({"parameters": {"flag": "no-such-flag", "mode": "full"}}, "flag"),
        ({"parameters": []}, "parameters"),
        ({"environment": "moon"}, "environment"),
        ({"window": {"start": "2026-03-05T09:00:00", "end": "2026-03-05T11:00:00"}}, "window"),
        ({"window": {"start": "2026-03-05T11:00:00Z", "end": "2026-03-05T09:00:00Z"}}, "window"),
        ({"window": {"start": "tomorrow", "end": "2026-03-05T09:00:00Z"}}, "window.start"),
        ({"checklist": "nope"}, "checklist"),
        ({"risk": "medium", "colour": "red"}, "colour"),
    ],
)
def test_approval_create__bad_input__400_names_the_field_nothing_made(
    call, world, overrides, names
):
    response = call(world["ci-bot"], "POST", URL, body(**overrides))
    assert response.status_code == 400, response.json()
    assert names in response.json()["detail"]
    assert not ApprovalRequest.objects.exists()


def test_approval_create__auditor__403_and_denial_audited(call, world):
    response = call(world["audrey"], "POST", URL, body())
    assert response.status_code == 403
    denied = AuditEvent.objects.get(outcome="denied")
    assert (denied.action, denied.actor_name) == ("approval.request.create", "audrey")
    assert not ApprovalRequest.objects.exists()


def test_approval_create__same_idempotency_key_and_body__one_request_first_answer(call, world):
    headers = {"Idempotency-Key": "ask-checkout-10"}
    first = call(world["ci-bot"], "POST", URL, body(), headers=headers)
    retry = call(world["ci-bot"], "POST", URL, body(), headers=headers)
    other = call(world["ci-bot"], "POST", URL, body(title="Other"), headers=headers)

    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert retry["Idempotent-Replayed"] == "true"
    assert other.status_code == 409
    assert other.json()["error"] == "idempotency_key_reused"
    assert ApprovalRequest.objects.count() == 1
    assert IdempotencyKey.objects.count() == 1


# --- GET /api/v1/approvals and /api/v1/approvals/{id} ---------------------------------------


def test_approval_list__status_and_environment__only_matching_newest_first(call, world):
    staging = request_change(world["dev"], "staging")
    first = request_change(world["dev"])
    second = request_change(world["ci-bot"])
    call(world["ci-bot"], "POST", f"{URL}/{second.pk}/cancel", {})

    def ids(query):
        response = call(world["otto"], "GET", URL + query)
        assert response.status_code == 200, response.json()
        return [item["id"] for item in response.json()["items"]]

    assert ids("") == [second.pk, first.pk, staging.pk]
    assert ids("?status=&environment=") == [second.pk, first.pk, staging.pk]
    assert ids("?environment=production") == [second.pk, first.pk]
    assert ids("?status=pending") == [first.pk, staging.pk]
    assert ids("?status=cancelled&environment=production") == [second.pk]


def test_approval_list__limit_and_cursor__pages_follow_each_other(call, world):
    made = [request_change(world["dev"]).pk for _ in range(5)]
    seen, cursor = [], None
    while True:
        query = f"?limit=2&cursor={cursor}" if cursor else "?limit=2"
        answer = call(world["dev"], "GET", URL + query).json()
        seen += [item["id"] for item in answer["items"]]
        cursor = answer["next"]
        if cursor is None:
            break
    assert seen == sorted(made, reverse=True)


@pytest.mark.parametrize(
    ("query", "status", "names"),
    [
        ("?status=waiting", 400, "status"),
        ("?limit=0", 400, "limit"),
        ("?cursor=not-a-cursor", 400, "cursor"),
        ("?environment=moon", 404, "moon"),
    ],
)
def test_approval_list__bad_query__answer_names_it(call, world, query, status, names):
    response = call(world["dev"], "GET", URL + query)
    assert response.status_code == status
    assert names in response.json()["detail"]


def _list_queries(call, user) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = call(user, "GET", URL + "?limit=500")
    assert response.status_code == 200
    return len(queries)


def test_approval_list__10_or_100_requests__same_number_of_queries(
    call, world, django_assert_max_num_queries
):
    def make(count):
        for n in range(count):
            request = complete_checklist(request_change(world["dev"]), world["dev"])
            if n % 2:
                go(request, world["rhea"])

    make(10)
    call(world["dev"], "GET", URL)  # the token's first use notes last_used_at
    # Token, requests, checklists, decisions.
    with django_assert_max_num_queries(4):
        ten = _list_queries(call, world["dev"])
    make(90)
    with django_assert_max_num_queries(4):
        hundred = _list_queries(call, world["dev"])
    assert hundred == ten, "the list must cost the same whatever the number of requests"


def test_approval_get__any_account__the_request(call, world):
    request = request_change(world["ci-bot"])
    response = call(world["otto"], "GET", f"{URL}/{request.pk}")
    assert response.status_code == 200
    assert response.json()["preview_hash"] == request.preview_hash


@pytest.mark.parametrize(("path", "status"), [("/999999", 404), ("/abc", 400), ("/0", 400)])
def test_approval_get__unknown_or_bad_id__404_or_400(call, world, path, status):
    response = call(world["dev"], "GET", URL + path)
    assert response.status_code == status
    assert response.json()["error"] in ("not_found", "invalid")


# --- PATCH /api/v1/approvals/{id} -----------------------------------------------------------


def test_approval_update__agent_edits_its_own__new_revision_and_hash_gos_void(call, world):
    request = go(complete_checklist(request_change(world["ci-bot"]), world["dev"]), world["rhea"])
    assert request.status == "approved"

    response = call(
        world["ci-bot"],
        "PATCH",
        f"{URL}/{request.pk}",
        {"parameters": {**TEN_PERCENT, "percentage": 20}, "risk": "high", "reason": "bigger"},
    )

    assert response.status_code == 200, response.json()
    answer = response.json()
    assert (answer["status"], answer["revision"], answer["risk"]) == ("pending", 3, "high")
    assert answer["preview_hash"] != request.preview_hash
    assert answer["preview"]["items"][0]["after"]["percentage"] == 20
    assert answer["approvals"] == []
    assert [(d["decider"], d["void"]) for d in answer["decisions"]] == [("rhea", True)]
    assert answer["title"] == "10% of checkout"  # omitted: kept


def test_approval_update__windows__set_and_removed_with_null(call, world):
    request = request_change(world["dev"])
    url = f"{URL}/{request.pk}"
    window = {"start": "2026-03-06T09:00:00+01:00", "end": "2026-03-06T10:00:00+01:00"}

    set_ = call(world["dev"], "PATCH", url, {"window": window}).json()
    removed = call(world["dev"], "PATCH", url, {"window": None, "impact": None}).json()

    assert set_["window"] == {
        "start": "2026-03-06T08:00:00+00:00",
        "end": "2026-03-06T09:00:00+00:00",
    }
    assert (removed["window"], removed["impact"], removed["revision"]) == (None, "", 3)


@pytest.mark.parametrize(
    ("change", "names"),
    [
        ({"title": ""}, "title"),
        ({"urgency": None}, "urgency"),
        ({"parameters": {"flag": "new-checkout", "mode": "full", "percentage": 101}}, "percentage"),
        ({"environment": "staging"}, "environment"),
        ({"window": {"start": "2026-03-06T09:00:00Z"}}, "window.end"),
    ],
)
def test_approval_update__bad_input__400_nothing_changed(call, world, change, names):
    request = request_change(world["dev"])
    response = call(world["dev"], "PATCH", f"{URL}/{request.pk}", change)
    assert response.status_code == 400, response.json()
    assert names in response.json()["detail"]
    assert fresh(request).revision == 1


def test_approval_update__closed_request__409(call, world):
    request = request_change(world["ci-bot"])
    call(world["ci-bot"], "POST", f"{URL}/{request.pk}/cancel", {})
    response = call(world["ci-bot"], "PATCH", f"{URL}/{request.pk}", {"title": "Again"})
    assert response.status_code == 409
    assert response.json()["error"] == "request_closed"


def test_approval_update__auditor_or_unknown__403_audited_or_404(call, world):
    request = request_change(world["dev"])
    refused = call(world["audrey"], "PATCH", f"{URL}/{request.pk}", {"title": "Mine"})
    missing = call(world["dev"], "PATCH", f"{URL}/999999", {"title": "Mine"})
    assert (refused.status_code, missing.status_code) == (403, 404)
    denied = AuditEvent.objects.get(outcome="denied")
    assert (denied.action, denied.actor_name) == ("approval.request.update", "audrey")
    assert fresh(request).title == "10% of checkout"


# --- PATCH /api/v1/approvals/{id}/checklist/{item} ----------------------------------------------


def test_checklist_item_set__agent_checks_with_a_link__new_revision_who_and_evidence(call, world):
    request = request_change(world["ci-bot"])
    item = request.checklist.get(required=True)

    response = call(
        world["ci-bot"],
        "PATCH",
        f"{URL}/{request.pk}/checklist/{item.pk}",
        {"checked": True, "evidence": "https://ci.example/run/81"},
    )

    assert response.status_code == 200, response.json()
    answer = response.json()
    assert answer["revision"] == 2 and answer["preview_hash"] != request.preview_hash
    checked = answer["checklist"][0]
    assert (checked["id"], checked["checked"], checked["checked_by"], checked["evidence"]) == (
        item.pk,
        True,
        "ci-bot",
        "https://ci.example/run/81",
    )


@pytest.mark.parametrize(
    ("change", "names"),
    [
        ({"checked": True}, "evidence"),  # this item needs evidence
        ({"checked": True, "evidence": "javascript:alert(1)"}, "evidence"),
        ({"checked": "yes"}, "checked"),
        ({"done": True}, "done"),
    ],
)
def test_checklist_item_set__bad_input__400_item_unchanged(call, world, change, names):
    request = request_change(world["ci-bot"])
    item = request.checklist.get(required=True)
    response = call(world["ci-bot"], "PATCH", f"{URL}/{request.pk}/checklist/{item.pk}", change)
    assert response.status_code == 400
    assert names in response.json()["detail"]
    assert fresh(request).revision == 1


def test_checklist_item_set__item_of_another_request__404(call, world):
    mine, other = request_change(world["dev"]), request_change(world["dev"])
    item = other.checklist.first()
    response = call(
        world["dev"], "PATCH", f"{URL}/{mine.pk}/checklist/{item.pk}", {"checked": False}
    )
    assert response.status_code == 404


def test_checklist_item_set__auditor_403_audited__closed_request_409(call, world):
    request = request_change(world["dev"])
    item = request.checklist.get(required=False)
    path = f"{URL}/{request.pk}/checklist/{item.pk}"

    refused = call(world["audrey"], "PATCH", path, {"checked": True})
    call(world["dev"], "POST", f"{URL}/{request.pk}/cancel", {})
    closed = call(world["dev"], "PATCH", path, {"checked": True})

    assert (refused.status_code, closed.status_code) == (403, 409)
    assert AuditEvent.objects.get(outcome="denied").action == "approval.checklist.set"


# --- The whole flow, through the API only -------------------------------------------------


def test_approvals_flow__agent_asks_people_decide_agent_edits_people_decide_again_human_executes(
    call, world
):
    agent, rita, rhea, omar = world["ci-bot"], world["rita"], world["rhea"], world["omar"]
    from releasecontrol.models import Environment
    from releasecontrol.services import environment_configure

    environment_configure(
        actor=world["root"],
        environment=Environment.objects.get(slug="production"),
        approvals_required=2,
        reason="two people",
    )
    made = create(call, agent)
    url = f"{URL}/{made['id']}"
    item = made["checklist"][0]["id"]
    checked = call(
        agent, "PATCH", f"{url}/checklist/{item}", {"checked": True, "evidence": "412/412 passed"}
    ).json()
    assert checked["revision"] == 2

    def decide(user, answer, decision="go", comment=""):
        sent = {"decision": decision, "comment": comment, "preview_hash": answer["preview_hash"]}
        response = call(user, "POST", f"{url}/decisions", sent)
        assert response.status_code == 200, response.json()
        return response.json()

    first = decide(rita, checked)
    assert (first["status"], len(first["approvals"])) == ("pending", 1)
    approved = decide(rhea, checked)
    assert approved["status"] == "approved"
    assert sorted(a["decider"] for a in approved["approvals"]) == ["rhea", "rita"]
    assert approved["approvals_required"] == 2

    edited = call(agent, "PATCH", url, {"parameters": {**TEN_PERCENT, "percentage": 25}})
    edited = edited.json()
    assert (edited["status"], edited["revision"]) == ("pending", 3)
    assert edited["preview_hash"] != approved["preview_hash"]
    assert edited["approvals"] == []
    assert [d["void"] for d in edited["decisions"]] == [True, True]

    stale = call(
        rita,
        "POST",
        f"{url}/decisions",
        {"decision": "go", "comment": "", "preview_hash": approved["preview_hash"]},
    )
    assert stale.status_code == 409
    assert stale.json()["error"] == "stale_preview"
    assert stale.json()["preview_hash"] == edited["preview_hash"]

    decide(rita, edited)
    again = decide(rhea, edited)
    assert again["status"] == "approved" and len(again["approvals"]) == 2
    assert len(again["decisions"]) == 4

    refused = call(agent, "POST", f"{url}/execute", {"reason": "ship it"})
    assert refused.status_code == 403
    assert flag_state().mode == "off"

    executed = call(omar, "POST", f"{url}/execute", {"reason": "window open"})
    assert executed.status_code == 200, executed.json()
    answer = executed.json()
    assert (answer["status"], answer["executed_by"]) == ("executed", "omar")
    assert answer["result"]["percentage"] == 25
    state = flag_state()
    assert (state.mode, state.percentage, state.version) == ("percentage", 25, 2)
    execution = AuditEvent.objects.get(action="approval.execute", outcome="ok")
    assert execution.actor_name == "omar"
    assert sorted(execution.after["approval"]["approvers"]) == ["rhea", "rita"]
    assert Decision.objects.filter(void=True).count() == 2
