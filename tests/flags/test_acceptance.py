"""Production serves only what people with production rights chose: a boolean's values are
always true/false, other types need two different values, and a non-boolean flag defined by
someone without production rights answers FLAG_NOT_FOUND in production until an approved
`flag.accept` request accepts its values there (flag_accept refuses everyone without one)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from approvals.execution import approval_execute
from approvals.models import ApprovalRequest
from flags import evaluation
from flags.models import Flag, FlagState
from flags.services import (
    ApprovalRequired,
    StaleEdit,
    flag_accept,
    flag_create,
    flag_state_set,
    kill_switch_engage,
    sdk_key_issue,
)
from releasecontrol.models import AuditEvent, Environment
from releasecontrol.requestable import ApprovalDrifted
from tests.flags.approved import accept_request_approved, accept_through_approval

pytestmark = pytest.mark.django_db

SINGLE = "/ofrep/v1/evaluate/flags/{}"
BULK = "/ofrep/v1/evaluate/flags"
EVIL = {"payment_provider": "https://evil.example"}
GOOD = {"payment_provider": "https://pay.example"}


@pytest.fixture(autouse=True)
def fresh_snapshot(settings):
    settings.FLAG_SNAPSHOT_MAX_AGE = 0
    evaluation.store.reset()
    yield
    evaluation.store.reset()


@pytest.fixture
def sdk_keys(system_user, environments) -> dict[str, str]:
    return {
        slug: sdk_key_issue(actor=system_user, environment=env, name="web").raw
        for slug, env in environments.items()
    }


def ofrep(client, keys: dict[str, str], environment: str, flag: str | None = None) -> Any:
    url = SINGLE.format(flag) if flag else BULK
    body = json.dumps({"context": {"targetingKey": "user-1"}})
    return client.post(
        url,
        data=body,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {keys[environment]}",
    )


def bulk_keys(client, keys: dict[str, str], environment: str) -> list[str]:
    return [f["key"] for f in ofrep(client, keys, environment).json()["flags"]]


@pytest.fixture
def payments(developer) -> Flag:
    """An object flag a developer defined: its off-value is what every kill switch serves."""
    return flag_create(
        actor=developer,
        key="payments",
        name="Payments",
        type="object",
        on_value=GOOD,
        off_value=EVIL,
    )


def last_event(**filters) -> AuditEvent | None:
    return AuditEvent.objects.filter(**filters).order_by("-id").first()


# --- The values a flag may have --------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "fields"),
    [
        ({"on_value": False, "off_value": True}, {"on_value", "off_value"}),
        ({"on_value": False}, {"on_value"}),
        ({"off_value": True}, {"off_value"}),
    ],
)
def test_flag_create__boolean_with_other_values__refused_and_nothing_written(
    developer, values, fields
):
    with pytest.raises(ValidationError) as error:
        flag_create(actor=developer, key="inverted", name="x", **values)
    assert set(error.value.message_dict) == fields
    assert not Flag.objects.exists()


def test_flag_create__boolean_values_omitted__true_and_false(developer):
    flag = flag_create(actor=developer, key="plain", name="Plain")
    assert (flag.on_value, flag.off_value) == (True, False)


@pytest.mark.parametrize(
    ("flag_type", "on_value", "off_value"),
    [
        ("string", "same", "same"),
        ("integer", 3, 3),
        ("float", 1, 1.0),
        ("object", {"a": 1, "b": 2}, {"b": 2, "a": 1}),
    ],
)
def test_flag_create__same_on_and_off_value__refused(developer, flag_type, on_value, off_value):
    with pytest.raises(ValidationError) as error:
        flag_create(
            actor=developer,
            key="same",
            name="x",
            type=flag_type,
            on_value=on_value,
            off_value=off_value,
        )
    assert "must differ" in " ".join(error.value.message_dict["off_value"])


@pytest.mark.parametrize("missing", ["on_value", "off_value"])
def test_flag_create__non_boolean_without_a_value__refused_naming_it(developer, missing):
    values = {"on_value": "a", "off_value": "b"}
    del values[missing]
    with pytest.raises(ValidationError) as error:
        flag_create(actor=developer, key="half", name="x", type="string", **values)
    assert set(error.value.message_dict) == {missing}


def test_evaluation__boolean_row_with_inverted_values__still_true_and_false(
    client, sdk_keys, developer, release_manager, production
):
    """A row written before the rule (or by hand) cannot make production serve `true` off."""
    flag = flag_create(actor=developer, key="legacy", name="Legacy")
    Flag.objects.filter(pk=flag.pk).update(on_value=False, off_value=True)
    assert ofrep(client, sdk_keys, "production", "legacy").json()["value"] is False
    flag_state_set(
        actor=release_manager, flag=flag, environment=production, mode="full", reason="go"
    )
    assert ofrep(client, sdk_keys, "production", "legacy").json()["value"] is True


# --- Who defined it decides whether production serves it -------------------------------------


def test_non_boolean_by_a_developer__production_flag_not_found_single_and_bulk(
    client, sdk_keys, payments
):
    response = ofrep(client, sdk_keys, "production", "payments")
    assert (response.status_code, response.json()["errorCode"]) == (404, "FLAG_NOT_FOUND")
    assert "payments" not in bulk_keys(client, sdk_keys, "production")
    # Development and staging serve it as defined.
    for slug in ("development", "staging"):
        assert ofrep(client, sdk_keys, slug, "payments").json()["value"] == EVIL
        assert "payments" in bulk_keys(client, sdk_keys, slug)
    state = FlagState.objects.get(flag=payments, environment__slug="production")
    assert state.values_accepted_at is None


def test_non_boolean_by_a_developer__kill_switch_engaged__still_flag_not_found(
    client, sdk_keys, payments, oncall, production
):
    """The off-value is what a kill switch serves: an unaccepted one never reaches users."""
    kill_switch_engage(actor=oncall, environment=production, scope="environment", reason="incident")
    response = ofrep(client, sdk_keys, "production", "payments")
    assert (response.status_code, response.json()["errorCode"]) == (404, "FLAG_NOT_FOUND")
    assert "payments" not in bulk_keys(client, sdk_keys, "production")


@pytest.mark.parametrize("who", ["release_manager", "oncall", "admin_user"])
def test_non_boolean_by_someone_with_production_rights__accepted_at_creation(
    request, client, sdk_keys, who
):
    author = request.getfixturevalue(who)
    flag_create(actor=author, key="limits", name="Limits", type="integer", on_value=10, off_value=3)
    assert ofrep(client, sdk_keys, "production", "limits").json()["value"] == 3
    state = FlagState.objects.get(flag__key="limits", environment__slug="production")
    assert (state.values_accepted_by, state.accepted_values) == (author, (10, 3))
    assert last_event(action="flag.create").after["values_accepted_in"] == ["production"]


def test_api__agent_defines_inverted_boolean_or_evil_object__production_never_serves_it(
    client, sdk_keys, agent, api_token_for, oncall, production
):
    """The reproduction: an agent's flag definitions cannot choose what production serves."""
    headers = {"HTTP_AUTHORIZATION": f"Bearer {api_token_for(agent)}"}

    def create(body: dict) -> Any:
        return client.post(
            "/api/v1/flags", data=json.dumps(body), content_type="application/json", **headers
        )

    inverted = create({"key": "x", "type": "boolean", "on_value": False, "off_value": True})
    assert inverted.status_code == 400 and "error" in inverted.json()
    assert not Flag.objects.filter(key="x").exists()
    created = create({"key": "pay", "type": "object", "on_value": GOOD, "off_value": EVIL})
    assert created.status_code == 201
    kill_switch_engage(actor=oncall, environment=production, scope="environment", reason="incident")
    assert ofrep(client, sdk_keys, "production", "pay").json()["errorCode"] == "FLAG_NOT_FOUND"


# --- Accepting: only through an approved request ----------------------------------------------

ASKED_FOR = {
    "action": "flag.accept",
    "environment": "production",
    "parameters": {"flag": "payments"},
}


@pytest.mark.parametrize("who", ["release_manager", "oncall", "admin_user"])
def test_flag_accept__approved_request_executed__served_audited_with_the_exact_values(
    request, client, sdk_keys, payments, developer, release_manager, production, who
):
    executor = request.getfixturevalue(who)
    version_before = Environment.objects.get(pk=production.pk).flags_version

    approval = accept_through_approval(
        payments,
        production,
        requester=developer,
        approver=release_manager,
        executor=executor,
        reason="provider URL checked with payments team",
    )

    state = FlagState.objects.get(flag=payments, environment=production)
    assert (state.version, state.values_accepted_by, state.accepted_values) == (
        2,
        executor,
        (GOOD, EVIL),
    )
    assert Environment.objects.get(pk=production.pk).flags_version > version_before
    event = last_event(action="flag.accept")
    assert (event.actor, event.outcome, event.environment_id) == (executor, "ok", "production")
    assert event.before == {"accepted": None, "version": 1}
    assert event.after["accepted"] == {"on_value": GOOD, "off_value": EVIL}
    assert event.after["version"] == 2
    assert (event.after["approval"]["request"], event.after["approval"]["approvers"]) == (
        approval.pk,
        ["rita"],
    )
    assert event.reason == "provider URL checked with payments team"
    assert ofrep(client, sdk_keys, "production", "payments").json()["value"] == EVIL


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("who", "refusal"),
    [
        # Everyone who may ask is told the request to make (409), production rights or not;
        # the others are refused (403).
        ("release_manager", ApprovalRequired),
        ("oncall", ApprovalRequired),
        ("admin_user", ApprovalRequired),
        ("developer", ApprovalRequired),
        ("agent", ApprovalRequired),
        ("auditor", PermissionDenied),
        ("outsider", PermissionDenied),
        ("system_user", PermissionDenied),
    ],
)
def test_flag_accept__without_an_approval__refused_for_everyone_and_denial_audited(
    request, client, sdk_keys, payments, production, who, refusal
):
    actor = request.getfixturevalue(who)
    with pytest.raises(refusal) as error:
        flag_accept(
            actor=actor,
            flag=payments,
            environment=production,
            expected_version=1,
            reason="looks fine to me",
        )
    denied = AuditEvent.objects.filter(action="flag.accept", outcome="denied")
    assert [(e.actor, e.environment_id) for e in denied] == [(actor, "production")]
    assert denied.get().after["requested"]["off_value"] == EVIL
    assert FlagState.objects.get(flag=payments, environment=production).values_accepted_at is None
    assert ofrep(client, sdk_keys, "production", "payments").json()["errorCode"] == (
        "FLAG_NOT_FOUND"
    )
    if refusal is ApprovalRequired:
        assert error.value.context["request"] == ASKED_FOR
        assert "Ask for a go instead: POST /api/v1/approvals" in error.value.detail


def test_flag_accept__already_accepted_same_values__idempotent_nothing_recorded(
    payments, developer, release_manager, production
):
    accept_through_approval(
        payments,
        production,
        requester=developer,
        approver=release_manager,
        executor=release_manager,
    )
    events = AuditEvent.objects.count()

    again = flag_accept(
        actor=release_manager,
        flag=payments,
        environment=production,
        expected_version=1,
        reason="ok",
    )

    assert again.version == 2
    assert AuditEvent.objects.count() == events


def test_flag_accept__state_changed_after_the_go__409_and_nothing_accepted(
    payments, developer, release_manager, production
):
    approval = accept_request_approved(
        payments, production, requester=developer, approver=release_manager
    )
    flag_state_set(
        actor=release_manager, flag=payments, environment=production, mode="shadow", reason="dark"
    )
    with pytest.raises(ApprovalDrifted):
        approval_execute(actor=release_manager, request=approval.pk, reason="go")
    with pytest.raises(ApprovalDrifted):
        flag_accept(
            actor=release_manager,
            flag=payments,
            environment=production,
            expected_version=1,
            reason="ok",
            approval=approval.pk,
        )
    assert FlagState.objects.get(flag=payments, environment=production).values_accepted_at is None
    assert ApprovalRequest.objects.get(pk=approval.pk).status == "approved"


def test_flag_accept__approved_with_a_stale_version__409_and_nothing_accepted(
    payments, developer, release_manager, production
):
    approval = accept_request_approved(
        payments, production, requester=developer, approver=release_manager
    )
    with pytest.raises(StaleEdit):
        flag_accept(
            actor=release_manager,
            flag=payments,
            environment=production,
            expected_version=7,
            reason="as approved",
            approval=approval.pk,
        )
    assert FlagState.objects.get(flag=payments, environment=production).values_accepted_at is None


def test_flag_accept__approved_but_without_reason__400(
    payments, developer, release_manager, production
):
    approval = accept_request_approved(
        payments, production, requester=developer, approver=release_manager
    )
    with pytest.raises(ValidationError) as error:
        flag_accept(
            actor=release_manager,
            flag=payments,
            environment=production,
            expected_version=1,
            reason=" ",
            approval=approval.pk,
        )
    assert "reason" in error.value.message_dict


def test_flag_accept__boolean_or_outside_production__400_nothing_to_accept(
    release_manager, payments, production, staging
):
    boolean = flag_create(actor=release_manager, key="plain", name="Plain")
    for flag, environment in ((boolean, production), (payments, staging)):
        with pytest.raises(ValidationError, match="Nothing to accept"):
            flag_accept(
                actor=release_manager,
                flag=flag,
                environment=environment,
                expected_version=1,
                reason="ok",
            )


def test_flag_accept__values_changed_since__acceptance_no_longer_counts(
    client, sdk_keys, developer, release_manager, payments, production
):
    """Acceptance is of exact values: other values (however they came) are not served."""
    accept_through_approval(
        payments,
        production,
        requester=developer,
        approver=release_manager,
        executor=release_manager,
    )
    Flag.objects.filter(pk=payments.pk).update(off_value={"payment_provider": "https://other"})
    Environment.objects.filter(pk=production.pk).update(flags_version=999)
    assert ofrep(client, sdk_keys, "production", "payments").json()["errorCode"] == "FLAG_NOT_FOUND"


# --- The accept endpoint: answers with the request to make -----------------------------------

ACCEPT_URL = "/api/v1/flags/payments/environments/{}/accept"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("who", ["release_manager", "agent"])
def test_api_accept__without_an_approval__409_names_the_request_denial_audited_not_served(
    request, api_call, client, sdk_keys, payments, who
):
    actor = request.getfixturevalue(who)
    before = api_call(actor, "GET", "/api/v1/flags/payments").json()
    assert before["environments"]["production"]["values_served"] is False
    assert before["environments"]["staging"]["values_served"] is True

    response = api_call(
        actor, "POST", ACCEPT_URL.format("production"), {"version": 1, "reason": "mine"}
    )

    assert response.status_code == 409, response.content
    body = response.json()
    assert body["error"] == "approval_required"
    assert "POST /api/v1/approvals" in body["detail"]
    if who == "release_manager":  # production rights: refused all the same
        assert "needs an approved request, whoever accepts them" in body["detail"]
    assert body["request"] == ASKED_FOR
    denied = last_event(action="flag.accept")
    assert (denied.actor, denied.outcome) == (actor, "denied")
    after = api_call(actor, "GET", "/api/v1/flags/payments").json()
    assert after["environments"]["production"]["values_served"] is False
    assert ofrep(client, sdk_keys, "production", "payments").json()["errorCode"] == (
        "FLAG_NOT_FOUND"
    )


def test_api_accept__the_request_it_names__made_approved_executed_values_served(
    api_call, client, sdk_keys, payments, developer, release_manager, oncall
):
    named = api_call(
        developer, "POST", ACCEPT_URL.format("production"), {"version": 1, "reason": "mine"}
    ).json()["request"]

    made = api_call(developer, "POST", "/api/v1/approvals", {**named, "title": "Payments URLs"})
    assert made.status_code == 201, made.content
    approval = made.json()
    for item in approval["checklist"]:
        if item["required"]:
            checked = api_call(
                developer,
                "PATCH",
                f"/api/v1/approvals/{approval['id']}/checklist/{item['id']}",
                {"checked": True, "evidence": "https://ci.example/run/7"},
            )
            assert checked.status_code == 200, checked.content
            approval = checked.json()
    decided = api_call(
        release_manager,
        "POST",
        f"/api/v1/approvals/{approval['id']}/decisions",
        {"decision": "go", "preview_hash": approval["preview_hash"]},
    )
    assert decided.json()["status"] == "approved", decided.content
    executed = api_call(
        oncall, "POST", f"/api/v1/approvals/{approval['id']}/execute", {"reason": "checked"}
    )

    assert executed.status_code == 200, executed.content
    assert ofrep(client, sdk_keys, "production", "payments").json()["value"] == EVIL
    again = api_call(
        release_manager, "POST", ACCEPT_URL.format("production"), {"version": 1, "reason": "x"}
    )
    assert (again.status_code, again.json()["version"]) == (200, 2)  # already accepted


@pytest.mark.parametrize(
    ("who", "body", "status", "mentions"),
    [
        ("release_manager", {"reason": "no version"}, 400, "version"),
        ("auditor", {"version": 1, "reason": "mine"}, 403, "Refused"),
    ],
)
def test_api_accept__bad_request_or_no_role__4xx_says_why_nothing_accepted(
    request, api_call, payments, production, who, body, status, mentions
):
    actor = request.getfixturevalue(who)
    response = api_call(actor, "POST", ACCEPT_URL.format("production"), body)

    assert response.status_code == status, response.content
    assert mentions in response.json()["detail"]
    state = FlagState.objects.get(flag=payments, environment=production)
    assert state.values_accepted_at is None
