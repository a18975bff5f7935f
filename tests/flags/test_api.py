"""The flags API: listing, creating and reading flags (/api/v1/flags...), through real
requests, real tokens, real PostgreSQL: allowed, 401, 403, 405, bad input, 404, 409, paging
and Idempotency-Key. States, history, restore and rollback: test_api_states.py."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from flags.models import Flag, FlagState
from flags.services import flag_create, flag_state_set
from releasecontrol.models import AuditEvent, Environment, IdempotencyKey

STATE_URL = "/api/v1/flags/new-checkout/environments/{}"


@pytest.fixture
def call(api_call):
    return api_call


@pytest.fixture
def flag(developer) -> Flag:
    return flag_create(actor=developer, key="new-checkout", name="New checkout", tags=["payments"])


def last_event(**filters) -> AuditEvent | None:
    return AuditEvent.objects.filter(**filters).order_by("-id").first()


# --- 401 / 405 for every endpoint -----------------------------------------------------------

ENDPOINTS = [
    ("GET", "/api/v1/me"),
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
    assert FlagState.objects.filter(version__gt=1).count() == 0


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/api/v1/flags"),
        ("DELETE", "/api/v1/flags/new-checkout"),
        ("POST", "/api/v1/flags/new-checkout/history"),
        ("PUT", STATE_URL.format("staging")),
        ("GET", STATE_URL.format("staging") + "/restore"),
        ("GET", "/api/v1/environments/production/rollback"),
        ("POST", "/api/v1/me"),
    ],
)
def test_endpoint__wrong_method__405_json_with_allow(call, developer, flag, method, path):
    response = call(developer, method, path)
    assert response.status_code == 405
    assert response["Content-Type"].startswith("application/json")
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
    assert set(body) == {"items", "next"} and body["next"] is None
    assert [f["key"] for f in body["items"]] == ["new-checkout", "ocr"]
    first = body["items"][0]
    assert first["tags"] == ["payments"]
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
        return [f["key"] for f in response.json()["items"]]

    assert keys("?tag=ocr") == ["ocr-fast", "ocr-slow"]
    assert keys("?search=faster") == ["ocr-fast"]
    assert keys("?tag=ocr&search=slow") == ["ocr-slow"]
    assert keys("?tag=nothing") == []


def test_flag_list__limit_and_cursor__pages_follow_each_other_without_gaps(call, developer):
    for n in range(5):
        flag_create(actor=developer, key=f"f{n}", name=f"F{n}")

    first = call(developer, "GET", "/api/v1/flags?limit=2").json()
    # A flag created between two reads lands on the page where its key belongs.
    flag_create(actor=developer, key="f1b", name="F1b")
    second = call(developer, "GET", f"/api/v1/flags?limit=2&cursor={first['next']}").json()
    third = call(developer, "GET", f"/api/v1/flags?limit=2&cursor={second['next']}").json()

    assert [f["key"] for f in first["items"]] == ["f0", "f1"]
    assert [f["key"] for f in second["items"]] == ["f1b", "f2"]
    assert [f["key"] for f in third["items"]] == ["f3", "f4"]
    assert third["next"] is None


def test_flag_list__default_limit__50(call, developer):
    for n in range(51):
        flag_create(actor=developer, key=f"f{n:02}", name=f"F{n}")
    body = call(developer, "GET", "/api/v1/flags").json()
    assert len(body["items"]) == 50 and body["next"] is not None
    rest = call(developer, "GET", f"/api/v1/flags?cursor={body['next']}").json()
    assert [f["key"] for f in rest["items"]] == ["f50"] and rest["next"] is None


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("?limit=501", "limit"),
        ("?limit=0", "limit"),
        ("?limit=abc", "limit"),
        ("?limit=99999999999999999999999", "limit"),
        ("?cursor=not-a-cursor", "cursor"),
        ("?cursor=eyJrZXkiOiAiLi4ifQ", "cursor"),  # {"key": ".."}: not a flag key
        ("?cursor=eyJpZCI6IDF9", "cursor"),  # {"id": 1}: another list's cursor
    ],
)
def test_flag_list__bad_paging__400_names_the_parameter(call, developer, flag, query, names):
    response = call(developer, "GET", f"/api/v1/flags{query}")
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "invalid"
    assert response.json()["detail"].startswith(names + ":")


def _list_queries(call, user) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = call(user, "GET", "/api/v1/flags?limit=500")
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
    # An engaged switch from the start, so both lists read the flags switches covered.
    call(oncall, "POST", "/api/v1/environments/development/rollback", {"reason": "load test"})
    # Token, flags, tags, states, kill switches and the flags they covered, environments.
    with django_assert_max_num_queries(7):
        ten = _list_queries(call, developer)
    make(10, 100)
    # More kill switches covering them are read once, not per flag.
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


def test_flag_create__object_flag_with_values__201(call, developer):
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
        ({"key": "g", "type": None}, "type"),
        ({"key": "bad key!"}, "key"),
        ({"key": ".."}, "key"),
        ({"key": "."}, "key"),
        ({"key": "-leading-dash"}, "key"),
        ({"key": "x/y"}, "key"),
        ({"key": "k" * 101}, "key"),
        ({"key": "new-line\n"}, "key"),
        ({"name": "No key"}, "key"),
        ({"key": 12}, "key"),
        ({"key": None}, "key"),
        ({"key": ["a"]}, "key"),
        ({"key": "g", "name": 5}, "name"),
        ({"key": "g", "name": "n" * 201}, "name"),
        ({"key": "g", "tags": "payments"}, "tags"),
        ({"key": "g", "tags": [1]}, "tags[0]"),
        ({"key": "g", "tags": None}, "tags"),
        ({"key": "g", "tags": ["Not a slug!"]}, "tags[0]"),
        ({"key": "g", "tags": ["t" * 51]}, "tags[0]"),
        ({"key": "g", "enabled": True}, "enabled"),
    ],
)
def test_flag_create__bad_input__400_names_the_field_nothing_recorded(
    call, developer, body, mentions
):
    response = call(developer, "POST", "/api/v1/flags", body)
    assert response.status_code == 400, response.content
    assert mentions in response.json()["detail"]
    assert not Flag.objects.exists()
    assert not AuditEvent.objects.filter(action="flag.create").exists()


def test_flag_create__unknown_field__400_names_it_and_the_accepted_ones(call, developer):
    response = call(developer, "POST", "/api/v1/flags", {"key": "g", "enabled": True})
    assert response.json()["error"] == "unknown_field"
    detail = response.json()["detail"]
    assert detail.startswith("Unknown field(s): enabled.")
    assert "key, name, description, tags, type, on_value, off_value" in detail


@pytest.mark.django_db(transaction=True)
def test_flag_create__bad_key_from_an_auditor__400_before_any_denial(call, auditor):
    """The key is checked before the policy, so a refusal never records a key like x/y."""
    response = call(auditor, "POST", "/api/v1/flags", {"key": "x/y"})
    assert response.status_code == 400
    assert not AuditEvent.objects.filter(outcome="denied").exists()


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b'"a string"', b"null", b"7"])
def test_flag_create__body_not_a_json_object__400_invalid_json(call, developer, raw):
    response = call(developer, "POST", "/api/v1/flags", raw=raw)
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "invalid_json"
    assert "JSON" in response.json()["detail"]


def test_flag_create__empty_body__400_asks_for_a_json_object(call, developer):
    response = call(developer, "POST", "/api/v1/flags")
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


# --- Idempotency-Key ----------------------------------------------------------------------------


def test_flag_create__same_idempotency_key_and_body__first_answer_once_created(call, developer):
    body = {"key": "new-checkout", "tags": ["payments"]}
    headers = {"Idempotency-Key": "create-checkout-1"}

    first = call(developer, "POST", "/api/v1/flags", body, headers=headers)
    retry = call(developer, "POST", "/api/v1/flags", body, headers=headers)

    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert retry["Idempotent-Replayed"] == "true"
    assert Flag.objects.count() == 1
    assert AuditEvent.objects.filter(action="flag.create").count() == 1


def test_flag_create__same_idempotency_key_other_body__409_nothing_created(call, developer):
    headers = {"Idempotency-Key": "k-1"}
    call(developer, "POST", "/api/v1/flags", {"key": "first"}, headers=headers)

    response = call(developer, "POST", "/api/v1/flags", {"key": "second"}, headers=headers)

    assert response.status_code == 409
    assert response.json()["error"] == "idempotency_key_reused"
    assert list(Flag.objects.values_list("key", flat=True)) == ["first"]


def test_flag_create__same_idempotency_key_other_account__its_own_request(call, developer, agent):
    headers = {"Idempotency-Key": "shared"}
    mine = call(developer, "POST", "/api/v1/flags", {"key": "mine"}, headers=headers)
    theirs = call(agent, "POST", "/api/v1/flags", {"key": "theirs"}, headers=headers)
    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert IdempotencyKey.objects.filter(key="shared").count() == 2


def test_flag_create__refused_with_idempotency_key__nothing_kept_retry_runs_again(
    call, developer, auditor
):
    headers = {"Idempotency-Key": "try"}
    refused = call(
        developer, "POST", "/api/v1/flags", {"key": "bad", "type": "string"}, headers=headers
    )
    assert refused.status_code == 400
    assert not IdempotencyKey.objects.exists()
    fixed = {"key": "bad", "type": "string", "on_value": "a", "off_value": "b"}
    assert call(developer, "POST", "/api/v1/flags", fixed, headers=headers).status_code == 201


@pytest.mark.parametrize("key", ["", "k" * 201])
def test_flag_create__idempotency_key_empty_or_too_long__400(call, developer, key):
    response = call(
        developer, "POST", "/api/v1/flags", {"key": "a"}, headers={"Idempotency-Key": key}
    )
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["detail"]
    assert not Flag.objects.exists()


# --- GET /api/v1/flags/{key} --------------------------------------------------------------


def test_flag_get__existing__flag_with_environments_in_promotion_order(call, auditor, flag):
    response = call(auditor, "GET", "/api/v1/flags/new-checkout")
    assert response.status_code == 200
    body = response.json()
    assert body["key"] == "new-checkout"
    production: dict[str, Any] = body["environments"]["production"]
    assert production == {
        "mode": "off",
        "percentage": 0,
        "allowlist": [],
        "version": 1,
        "updated_at": production["updated_at"],
        "updated_by": None,
        "kill_switch": None,
        "values_served": True,  # a boolean's values need no acceptance
    }
    assert list(body["environments"]) == list(
        Environment.objects.order_by("position").values_list("slug", flat=True)
    )


def test_flag_get__unknown_key__404(call, developer):
    response = call(developer, "GET", "/api/v1/flags/nope")
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "detail": "No flag 'nope'"}


@pytest.mark.parametrize("key", ["..", "-x", "k" * 101, "a%20b", "%C3%A9"])
def test_flag_get__key_not_a_flag_key__400_names_key(call, developer, key):
    response = call(developer, "GET", f"/api/v1/flags/{key}")
    assert response.status_code == 400, response.content
    assert response.json()["detail"].startswith("key:")


@pytest.mark.django_db(transaction=True)
def test_flag_create__same_idempotency_key_at_once__one_flag_both_answered_it(
    developer, api_token_for
):
    import threading

    from django.db import connections
    from django.test import Client

    token = api_token_for(developer)
    barrier, answers = threading.Barrier(2), []

    def send() -> None:
        barrier.wait()
        response = Client().post(
            "/api/v1/flags",
            {"key": "racing"},
            content_type="application/json",
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "race-1"},
        )
        answers.append((response.status_code, response.json()["key"]))
        connections.close_all()

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert answers == [(201, "racing"), (201, "racing")]
    assert Flag.objects.filter(key="racing").count() == 1
    assert AuditEvent.objects.filter(action="flag.create").count() == 1
