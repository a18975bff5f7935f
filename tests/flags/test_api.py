"""The agent API for flags (/api/v1/flags..., /api/v1/environments/{env}/rollback), through
real requests, real tokens, real PostgreSQL: allowed, 401, 403, 405, bad input, 404, 409."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from flags.models import Flag, FlagState
from flags.services import flag_create, flag_state_set, kill_switch_release
from releasecontrol.audit import audit_verify
from releasecontrol.models import AuditEvent, Environment

NOTHING = object()


@pytest.fixture
def call(client, api_token_for) -> Callable[..., Any]:
    """call(user, "PATCH", "/api/v1/...", body) -> response; user None sends no token."""
    tokens: dict[int, str] = {}

    def send(user, method: str, path: str, body: Any = NOTHING, *, raw: bytes | None = None):
        headers = {}
        if user is not None:
            if user.pk not in tokens:
                tokens[user.pk] = api_token_for(user)
            headers["Authorization"] = f"Bearer {tokens[user.pk]}"
        data = raw if raw is not None else (b"" if body is NOTHING else json.dumps(body))
        return client.generic(
            method, path, data=data, content_type="application/json", headers=headers
        )

    return send


@pytest.fixture
def flag(developer) -> Flag:
    return flag_create(actor=developer, key="new-checkout", name="New checkout", tags=["payments"])


def last_event(**filters) -> AuditEvent | None:
    return AuditEvent.objects.filter(**filters).order_by("-id").first()


def state_of(flag: Flag, environment: Environment) -> dict[str, Any]:
    state = FlagState.objects.get(flag=flag, environment=environment)
    return {
        "mode": state.mode,
        "percentage": state.percentage,
        "allowlist": state.allowlist,
        "version": state.version,
    }


STATE_URL = "/api/v1/flags/new-checkout/environments/{}"

# --- 401 / 405 for every endpoint -----------------------------------------------------------

ENDPOINTS = [
    ("GET", "/api/v1/flags"),
    ("POST", "/api/v1/flags"),
    ("GET", "/api/v1/flags/new-checkout"),
    ("GET", "/api/v1/flags/new-checkout/history"),
    ("GET", STATE_URL.format("staging")),
    ("PATCH", STATE_URL.format("staging")),
    ("POST", STATE_URL.format("staging") + "/restore"),
    ("POST", "/api/v1/environments/production/rollback"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
@pytest.mark.parametrize("authorization", [None, "Bearer rcp_not-a-real-token", "Token abc"])
def test_endpoint__no_valid_token__401_json(client, flag, method, path, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    response = client.generic(
        method, path, data="{}", content_type="application/json", headers=headers
    )
    assert response.status_code == 401
    assert response.json()["error"] == "unauthenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/api/v1/flags"),
        ("DELETE", "/api/v1/flags/new-checkout"),
        ("POST", "/api/v1/flags/new-checkout/history"),
        ("PUT", STATE_URL.format("staging")),
        ("GET", STATE_URL.format("staging") + "/restore"),
        ("GET", "/api/v1/environments/production/rollback"),
    ],
)
def test_endpoint__wrong_method__405_with_allow(call, developer, flag, method, path):
    response = call(developer, method, path)
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"
    assert method not in response["Allow"]


# --- GET /api/v1/flags ----------------------------------------------------------------------


def test_flag_list__any_account__flags_with_state_in_every_environment(
    call, outsider, developer, staging, flag
):
    flag_state_set(actor=developer, flag=flag, environment=staging, mode="full")
    flag_create(actor=developer, key="ocr", name="OCR", tags=["ocr"])

    # An account without roles reads too: environment and flag states are public inside.
    response = call(outsider, "GET", "/api/v1/flags")

    assert response.status_code == 200
    body = response.json()
    assert (body["count"], body["page"], body["pages"], body["next"]) == (2, 1, 1, None)
    first = body["results"][0]
    assert first["key"] == "new-checkout" and first["tags"] == ["payments"]
    assert first["type"] == "boolean" and (first["on_value"], first["off_value"]) == (True, False)
    assert list(first["environments"]) == ["development", "staging", "production"]
    staging_state = first["environments"]["staging"]
    assert (staging_state["mode"], staging_state["version"], staging_state["updated_by"]) == (
        "full",
        2,
        "dev",
    )
    assert first["environments"]["production"]["mode"] == "off"
    assert first["environments"]["production"]["kill_switch"] is None


def test_flag_list__tag_and_search__only_matching_flags(call, developer):
    flag_create(actor=developer, key="calling-v2", name="Calling v2", tags=["calling"])
    flag_create(actor=developer, key="ocr-fast", name="Faster OCR", tags=["ocr"])
    flag_create(actor=developer, key="ocr-slow", name="Slow OCR", tags=["ocr"])

    def keys(query: str) -> list[str]:
        response = call(developer, "GET", f"/api/v1/flags{query}")
        assert response.status_code == 200
        return [f["key"] for f in response.json()["results"]]

    assert keys("?tag=ocr") == ["ocr-fast", "ocr-slow"]
    assert keys("?search=faster") == ["ocr-fast"]
    assert keys("?tag=ocr&search=slow") == ["ocr-slow"]
    assert keys("?tag=nothing") == []


def test_flag_list__page_size__pages_follow_each_other(call, developer):
    for n in range(5):
        flag_create(actor=developer, key=f"f{n}", name=f"F{n}")

    first = call(developer, "GET", "/api/v1/flags?page_size=2").json()
    last = call(developer, "GET", "/api/v1/flags?page_size=2&page=3").json()

    assert [f["key"] for f in first["results"]] == ["f0", "f1"]
    assert (first["count"], first["pages"], first["next"], first["previous"]) == (5, 3, 2, None)
    assert [f["key"] for f in last["results"]] == ["f4"]
    assert (last["next"], last["previous"]) == (None, 2)


@pytest.mark.parametrize(
    ("query", "status", "names"),
    [
        ("?page_size=501", 400, "page_size"),
        ("?page_size=0", 400, "page_size"),
        ("?page=abc", 400, "page"),
        ("?page=-1", 400, "page"),
        ("?page=9", 404, "page"),
    ],
)
def test_flag_list__bad_paging__says_what_to_fix(call, developer, flag, query, status, names):
    response = call(developer, "GET", f"/api/v1/flags{query}")
    assert response.status_code == status
    assert names in response.json()["detail"].lower()


def _list_queries(call, user) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = call(user, "GET", "/api/v1/flags?page_size=500")
    assert response.status_code == 200
    return len(queries)


def test_flag_list__10_or_100_flags__same_number_of_queries(
    call, developer, oncall, staging, django_assert_max_num_queries
):
    def make(start: int, stop: int) -> None:
        for n in range(start, stop):
            flag = flag_create(actor=developer, key=f"flag-{n:03}", name=f"Flag {n}", tags=["t"])
            if n % 3 == 0:
                flag_state_set(
                    actor=developer,
                    flag=flag,
                    environment=staging,
                    mode="allowlist",
                    allowlist=["a"],
                )

    make(0, 10)
    call(developer, "GET", "/api/v1/flags")  # the token's first use notes last_used_at
    with django_assert_max_num_queries(7):
        ten = _list_queries(call, developer)
    make(10, 100)
    # A kill switch covering them is read once, not per flag.
    call(oncall, "POST", "/api/v1/environments/staging/rollback", {"reason": "load test"})
    with django_assert_max_num_queries(7):
        hundred = _list_queries(call, developer)
    assert hundred == ten, "the list must cost the same whatever the number of flags"


# --- POST /api/v1/flags -----------------------------------------------------------------------


def test_flag_create__developer__201_off_everywhere_and_audited(call, developer):
    body = {
        "key": "new-checkout",
        "name": "New checkout",
        "description": "Rewrite of the checkout",
        "tags": ["payments"],
        "type": "boolean",
        "on_value": True,
        "off_value": False,
    }

    response = call(developer, "POST", "/api/v1/flags", body)

    assert response.status_code == 201
    flag = response.json()
    assert {k: flag[k] for k in body} == body
    assert flag["owner"] == "dev"
    assert {env: s["mode"] for env, s in flag["environments"].items()} == {
        "development": "off",
        "staging": "off",
        "production": "off",
    }
    assert {s["version"] for s in flag["environments"].values()} == {1}
    event = last_event(action="flag.create")
    assert (event.actor_name, event.outcome, event.target_name) == ("dev", "ok", "new-checkout")
    assert event.before is None and event.after["tags"] == ["payments"]


def test_flag_create__agent_boolean_without_values__defaults_true_false(call, agent):
    response = call(agent, "POST", "/api/v1/flags", {"key": "bot-flag"})
    assert response.status_code == 201
    body = response.json()
    assert (body["name"], body["on_value"], body["off_value"]) == ("bot-flag", True, False)
    assert last_event(action="flag.create").actor_kind == "agent"


def test_flag_create__string_flag_with_values__201(call, developer):
    response = call(
        developer,
        "POST",
        "/api/v1/flags",
        {"key": "greeting", "type": "object", "on_value": {"a": 1}, "off_value": {}},
    )
    assert response.status_code == 201
    assert response.json()["on_value"] == {"a": 1}


@pytest.mark.parametrize(
    ("body", "mentions"),
    [
        ({"key": "g", "type": "string", "on_value": "hi"}, "off_value"),
        ({"key": "g", "type": "integer"}, "on_value"),
        ({"key": "g", "type": "boolean", "on_value": "yes"}, "on_value"),
        ({"key": "g", "type": "integer", "on_value": 1.5, "off_value": 0}, "on_value"),
        ({"key": "g", "type": "colour"}, "type"),
        ({"key": "bad key!"}, "key"),
        ({"name": "No key"}, "key"),
        ({"key": 12}, "key"),
        ({"key": "g", "tags": "payments"}, "tags"),
        ({"key": "g", "enabled": True}, "enabled"),
    ],
)
def test_flag_create__bad_input__400_says_what_to_fix(call, developer, body, mentions):
    response = call(developer, "POST", "/api/v1/flags", body)
    assert response.status_code == 400, response.content
    assert mentions in response.json()["detail"]
    assert not Flag.objects.exists()


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]"])
def test_flag_create__body_not_a_json_object__400(call, developer, raw):
    response = call(developer, "POST", "/api/v1/flags", raw=raw)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_json"


def test_flag_create__duplicate_key__409_names_the_key(call, developer, flag):
    response = call(developer, "POST", "/api/v1/flags", {"key": "new-checkout"})
    assert response.status_code == 409
    assert response.json()["error"] == "flag_exists"
    assert "new-checkout" in response.json()["detail"]
    assert Flag.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_flag_create__auditor__403_and_denial_audited(call, auditor):
    response = call(auditor, "POST", "/api/v1/flags", {"key": "nope"})
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"
    denied = last_event(outcome="denied")
    assert (denied.action, denied.actor_name, denied.target_name) == (
        "flag.create",
        "audrey",
        "nope",
    )
    assert not Flag.objects.exists()


# --- GET /api/v1/flags/{key} --------------------------------------------------------------


def test_flag_get__existing__flag_with_environments_in_promotion_order(call, auditor, flag):
    response = call(auditor, "GET", "/api/v1/flags/new-checkout")
    assert response.status_code == 200
    body = response.json()
    assert body["key"] == "new-checkout"
    assert body["environments"]["production"] == {
        "mode": "off",
        "percentage": 0,
        "allowlist": [],
        "version": 1,
        "updated_at": body["environments"]["production"]["updated_at"],
        "updated_by": None,
        "kill_switch": None,
    }
    assert list(body["environments"]) == list(
        Environment.objects.order_by("position").values_list("slug", flat=True)
    )


def test_flag_get__unknown_key__404(call, developer):
    response = call(developer, "GET", "/api/v1/flags/nope")
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "detail": "No flag 'nope'"}


# --- PATCH /api/v1/flags/{key}/environments/{environment} -----------------------------------


def test_flag_state_patch__developer_in_staging__200_and_audited(call, developer, staging, flag):
    response = call(
        developer,
        "PATCH",
        STATE_URL.format("staging"),
        {"mode": "percentage", "percentage": 25, "allowlist": ["qa-1"], "version": 1},
    )

    assert response.status_code == 200
    body = response.json()
    assert body["flag"] == "new-checkout" and body["environment"] == "staging"
    assert (body["mode"], body["percentage"], body["allowlist"], body["version"]) == (
        "percentage",
        25,
        ["qa-1"],
        2,
    )
    assert body["updated_by"] == "dev"
    assert state_of(flag, staging) == {
        "mode": "percentage",
        "percentage": 25,
        "allowlist": ["qa-1"],
        "version": 2,
    }
    event = last_event(action="flag.state.set")
    assert (event.actor_name, event.environment_id, event.target_name) == (
        "dev",
        "staging",
        "new-checkout",
    )
    assert event.before == {"mode": "off", "percentage": 0, "allowlist": [], "version": 1}
    assert event.after == {
        "mode": "percentage",
        "percentage": 25,
        "allowlist": ["qa-1"],
        "version": 2,
    }


def test_flag_state_patch__omitted_fields__keep_their_values(call, developer, staging, flag):
    call(developer, "PATCH", STATE_URL.format("staging"), {"mode": "allowlist", "allowlist": ["a"]})

    response = call(developer, "PATCH", STATE_URL.format("staging"), {"percentage": 40})

    assert response.status_code == 200
    assert state_of(flag, staging) == {
        "mode": "allowlist",
        "percentage": 40,
        "allowlist": ["a"],
        "version": 3,
    }


def test_flag_state_get__one_environment__the_state(call, developer, staging, flag):
    flag_state_set(actor=developer, flag=flag, environment=staging, mode="shadow")
    response = call(developer, "GET", STATE_URL.format("staging"))
    assert response.status_code == 200
    assert (response.json()["mode"], response.json()["version"]) == ("shadow", 2)


def test_flag_state_patch__release_manager_in_production_with_reason__200_reason_audited(
    call, release_manager, production, flag
):
    response = call(
        release_manager,
        "PATCH",
        STATE_URL.format("production"),
        {"mode": "percentage", "percentage": 10, "version": 1, "reason": "canary 10%"},
    )
    assert response.status_code == 200
    event = last_event(action="flag.state.set")
    assert (event.actor_name, event.environment_id, event.reason) == (
        "rita",
        "production",
        "canary 10%",
    )
    assert event.after["percentage"] == 10


@pytest.mark.parametrize(
    ("body", "mentions"),
    [
        ({"mode": "on"}, "mode"),
        ({"mode": "percentage", "percentage": 101}, "percentage"),
        ({"mode": "percentage", "percentage": "50"}, "percentage"),
        ({"percentage": True}, "percentage"),
        ({"allowlist": "user-1,user-2"}, "allowlist"),
        ({"allowlist": ["ok", ""]}, "allowlist"),
        ({"mode": "full", "colour": "green"}, "colour"),
        ({"mode": "full", "version": "1"}, "version"),
        ({"mode": "full", "version": 0}, "version"),
        ({"mode": "full", "reason": 5}, "reason"),
    ],
)
def test_flag_state_patch__bad_input__400_says_what_to_fix_and_nothing_changes(
    call, developer, staging, flag, body, mentions
):
    response = call(developer, "PATCH", STATE_URL.format("staging"), body)
    assert response.status_code == 400, response.content
    assert mentions in response.json()["detail"]
    assert state_of(flag, staging)["version"] == 1


def test_flag_state_patch__not_json__400(call, developer, staging, flag):
    response = call(developer, "PATCH", STATE_URL.format("staging"), raw=b"mode=full")
    assert response.status_code == 400
    assert "JSON" in response.json()["detail"]


def test_flag_state_patch__production_without_reason__400_asks_for_one(
    call, oncall, production, flag
):
    response = call(oncall, "PATCH", STATE_URL.format("production"), {"mode": "full"})
    assert response.status_code == 400
    assert "reason" in response.json()["detail"]
    assert state_of(flag, production)["mode"] == "off"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("who", "username"), [("developer", "dev"), ("agent", "ci-bot")])
def test_flag_state_patch__developer_or_agent_in_production__403_and_denial_audited(
    request, call, developer, production, who, username
):
    flag = flag_create(actor=developer, key="new-checkout", name="New checkout")
    actor = request.getfixturevalue(who)

    response = call(
        actor,
        "PATCH",
        STATE_URL.format("production"),
        {"mode": "full", "version": 1, "reason": "ship it"},
    )

    assert response.status_code == 403
    assert response.json()["detail"].startswith("Refused:")
    denied = last_event(outcome="denied")
    assert (denied.action, denied.actor_name, denied.environment_id) == (
        "flag.state.set",
        username,
        "production",
    )
    assert denied.after["requested"]["mode"] == "full"
    assert state_of(flag, production)["mode"] == "off"
    assert audit_verify().ok


def test_flag_state_patch__stale_version__409_names_who_and_loses_nothing(
    call, developer, oncall, staging, flag
):
    # Given omar and dev both read version 1, and omar saves first
    first = call(oncall, "PATCH", STATE_URL.format("staging"), {"mode": "full", "version": 1})
    assert first.status_code == 200

    # When dev saves against the version they read
    second = call(
        developer,
        "PATCH",
        STATE_URL.format("staging"),
        {"mode": "allowlist", "allowlist": ["me"], "version": 1},
    )

    # Then dev is told who changed it, sees the state now, and omar's change stands
    assert second.status_code == 409
    body = second.json()
    assert body["error"] == "stale"
    assert "omar" in body["detail"] and "version 2" in body["detail"]
    assert body["updated_by"] == "omar"
    assert body["current"] == {"mode": "full", "percentage": 0, "allowlist": [], "version": 2}
    assert state_of(flag, staging) == body["current"]
    assert AuditEvent.objects.filter(action="flag.state.set").count() == 1


def test_flag_state_patch__kill_switch_engaged__409_on_increase_200_on_decrease(
    call, release_manager, oncall, production, flag
):
    call(
        release_manager,
        "PATCH",
        STATE_URL.format("production"),
        {"mode": "percentage", "percentage": 10, "reason": "canary"},
    )
    rollback = call(oncall, "POST", "/api/v1/environments/production/rollback", {"reason": "5xx"})
    assert rollback.status_code == 200

    increase = call(
        release_manager,
        "PATCH",
        STATE_URL.format("production"),
        {"mode": "percentage", "percentage": 10, "reason": "try again"},
    )
    decrease = call(
        release_manager,
        "PATCH",
        STATE_URL.format("production"),
        {"mode": "shadow", "reason": "shadow traffic while we look"},
    )

    assert increase.status_code == 409
    assert increase.json()["error"] == "kill_switch_engaged"
    assert "omar" in increase.json()["detail"]
    assert decrease.status_code == 200 and decrease.json()["mode"] == "shadow"
    flag_json = call(release_manager, "GET", "/api/v1/flags/new-checkout").json()
    switch = flag_json["environments"]["production"]["kill_switch"]
    assert (switch["scope"], switch["engaged_by"], switch["reason"]) == (
        "environment",
        "omar",
        "5xx",
    )
    assert flag_json["environments"]["staging"]["kill_switch"] is None


def test_flag_state_patch__approval_required__409_says_so(call, release_manager, production, flag):
    Environment.objects.filter(pk=production.pk).update(require_approval_for_increase=True)
    response = call(
        release_manager, "PATCH", STATE_URL.format("production"), {"mode": "full", "reason": "go"}
    )
    assert response.status_code == 409
    assert response.json()["error"] == "approval_required"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/flags/nope/environments/staging",
        "/api/v1/flags/new-checkout/environments/moon",
    ],
)
def test_flag_state_patch__unknown_flag_or_environment__404(call, developer, flag, path):
    response = call(developer, "PATCH", path, {"mode": "full"})
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


# --- POST /api/v1/environments/{environment}/rollback ---------------------------------------


def test_environment_rollback__oncall__turns_off_and_second_call_is_idempotent(
    call, release_manager, oncall, production, staging, flag
):
    other = flag_create(actor=release_manager, key="ocr", name="OCR")
    for f, state in ((flag, {"mode": "full"}), (other, {"mode": "percentage", "percentage": 30})):
        flag_state_set(actor=release_manager, flag=f, environment=production, reason="go", **state)
    flag_state_set(actor=release_manager, flag=flag, environment=staging, mode="full")

    first = call(oncall, "POST", "/api/v1/environments/production/rollback", {"reason": "5xx"})

    assert first.status_code == 200
    body = first.json()
    assert body["environment"] == "production" and body["already_rolled_back"] is False
    assert [(t["flag"], t["before"]["mode"]) for t in body["turned_off"]] == [
        ("new-checkout", "full"),
        ("ocr", "percentage"),
    ]
    assert body["kill_switch"]["engaged_by"] == "omar"
    assert state_of(flag, production)["mode"] == state_of(other, production)["mode"] == "off"
    assert state_of(flag, staging)["mode"] == "full"
    event = last_event(action="killswitch.engage")
    assert (event.actor_name, event.environment_id, event.reason) == ("omar", "production", "5xx")
    assert [s["flag"] for s in event.before["states"]] == ["new-checkout", "ocr"]
    assert event.after["turned_off"] == 2

    second = call(oncall, "POST", "/api/v1/environments/production/rollback", {"reason": "again"})

    assert second.status_code == 200
    assert second.json()["already_rolled_back"] is True
    assert second.json()["turned_off"] == []
    assert "already rolled back by omar" in second.json()["detail"]
    assert AuditEvent.objects.filter(action="killswitch.engage").count() == 1


@pytest.mark.django_db(transaction=True)
def test_environment_rollback__agent__403_denial_audited_nothing_turned_off(
    call, agent, release_manager, production
):
    flag = flag_create(actor=release_manager, key="new-checkout", name="New checkout")
    flag_state_set(
        actor=release_manager, flag=flag, environment=production, mode="full", reason="go"
    )

    response = call(agent, "POST", "/api/v1/environments/production/rollback", {"reason": "panic"})

    assert response.status_code == 403
    assert "agent" in response.json()["detail"]
    denied = last_event(outcome="denied")
    assert (denied.action, denied.actor_name, denied.environment_id, denied.reason) == (
        "killswitch.engage",
        "ci-bot",
        "production",
        "panic",
    )
    assert state_of(flag, production)["mode"] == "full"
    assert not Environment.objects.get(pk=production.pk).kill_switch_engaged


@pytest.mark.parametrize(
    ("body", "mentions"),
    [({}, "reason"), ({"reason": "   "}, "reason"), ({"reason": "x", "scope": "tag"}, "scope")],
)
def test_environment_rollback__bad_input__400_and_not_engaged(
    call, oncall, production, body, mentions
):
    response = call(oncall, "POST", "/api/v1/environments/production/rollback", body)
    assert response.status_code == 400
    assert mentions in response.json()["detail"]
    assert not Environment.objects.get(pk=production.pk).kill_switch_engaged


def test_environment_rollback__unknown_environment__404(call, oncall):
    response = call(oncall, "POST", "/api/v1/environments/moon/rollback", {"reason": "x"})
    assert response.status_code == 404


# --- History and restore ----------------------------------------------------------------------


def test_flag_history__changes__newest_first_with_ids(call, developer, staging, production, flag):
    flag_state_set(actor=developer, flag=flag, environment=staging, mode="full")
    response = call(developer, "GET", "/api/v1/flags/new-checkout/history?environment=staging")
    assert response.status_code == 200
    events = response.json()["events"]
    assert events[0]["action"] == "flag.state.set" and events[0]["after"]["mode"] == "full"
    assert events[0]["id"] == last_event(action="flag.state.set").pk
    bad = call(developer, "GET", "/api/v1/flags/new-checkout/history?limit=1000")
    assert bad.status_code == 400


def test_flag_state_restore__after_rollback_and_release__brings_back_the_state(
    call, release_manager, oncall, production, flag
):
    flag_state_set(
        actor=release_manager,
        flag=flag,
        environment=production,
        mode="percentage",
        percentage=10,
        allowlist=["vip"],
        reason="canary",
    )
    rollback = call(oncall, "POST", "/api/v1/environments/production/rollback", {"reason": "5xx"})
    assert rollback.status_code == 200
    kill_event = last_event(action="killswitch.engage")

    # While the kill switch holds, bringing the state back is an increase: refused
    refused = call(
        release_manager,
        "POST",
        STATE_URL.format("production") + "/restore",
        {"event_id": kill_event.pk, "reason": "restore canary"},
    )
    assert refused.status_code == 409

    env = Environment.objects.get(pk=production.pk)
    kill_switch_release(actor=release_manager, switch=env.kill_switches.get(), reason="fixed")
    response = call(
        release_manager,
        "POST",
        STATE_URL.format("production") + "/restore",
        {"event_id": kill_event.pk, "version": 3, "reason": "restore canary"},
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["mode"], body["percentage"], body["allowlist"], body["version"]) == (
        "percentage",
        10,
        ["vip"],
        4,
    )
    assert body["restored_from"] == kill_event.pk
    event = last_event(action="flag.state.restore")
    assert (event.actor_name, event.reason) == ("rita", "restore canary")
    assert event.before["mode"] == "off" and event.after["percentage"] == 10


def test_flag_state_restore__side_before_of_a_change__previous_state_back(
    call, developer, staging, flag
):
    flag_state_set(
        actor=developer, flag=flag, environment=staging, mode="allowlist", allowlist=["a"]
    )
    flag_state_set(actor=developer, flag=flag, environment=staging, mode="full")
    change = last_event(action="flag.state.set")

    response = call(
        developer,
        "POST",
        STATE_URL.format("staging") + "/restore",
        {"event_id": change.pk, "side": "before"},
    )

    assert response.status_code == 200
    assert state_of(flag, staging) == {
        "mode": "allowlist",
        "percentage": 0,
        "allowlist": ["a"],
        "version": 4,
    }


def test_flag_state_restore__event_of_another_flag_or_environment__400(
    call, developer, staging, development, flag
):
    other = flag_create(actor=developer, key="ocr", name="OCR")
    flag_state_set(actor=developer, flag=other, environment=staging, mode="full")
    other_flag_event = last_event(action="flag.state.set")
    flag_state_set(actor=developer, flag=flag, environment=development, mode="full")
    other_env_event = last_event(action="flag.state.set")
    create_event = last_event(action="flag.create")

    for event_id in (other_flag_event.pk, other_env_event.pk, create_event.pk):
        response = call(
            developer, "POST", STATE_URL.format("staging") + "/restore", {"event_id": event_id}
        )
        assert response.status_code == 400
        assert response.json()["error"] == "not_restorable"
    assert state_of(flag, staging)["version"] == 1


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({}, 400),
        ({"event_id": "7"}, 400),
        ({"event_id": 1, "side": "middle"}, 400),
        ({"event_id": 999999}, 404),
    ],
)
def test_flag_state_restore__bad_or_unknown_event__400_or_404(call, developer, flag, body, status):
    response = call(developer, "POST", STATE_URL.format("staging") + "/restore", body)
    assert response.status_code == status


@pytest.mark.django_db(transaction=True)
def test_flag_state_restore__agent_in_production__403_and_denial_audited(
    call, agent, release_manager, production
):
    flag = flag_create(actor=release_manager, key="new-checkout", name="New checkout")
    flag_state_set(
        actor=release_manager, flag=flag, environment=production, mode="full", reason="go"
    )
    flag_state_set(actor=release_manager, flag=flag, environment=production, mode="off", reason="x")
    change = last_event(action="flag.state.set")

    response = call(
        agent,
        "POST",
        STATE_URL.format("production") + "/restore",
        {"event_id": change.pk, "side": "before", "reason": "bring it back"},
    )

    assert response.status_code == 403
    denied = last_event(outcome="denied")
    assert (denied.action, denied.actor_name) == ("flag.state.restore", "ci-bot")
    assert state_of(flag, production)["mode"] == "off"
