"""The flags API on states: PATCH and GET /api/v1/flags/{key}/environments/{environment},
history, restore and the environment rollback, through real requests, real tokens, real
PostgreSQL: allowed, 403 (with the denial audited), 404, 409 stale, 400 bad input."""

from __future__ import annotations

from typing import Any

import pytest
from django.db.models import Q

from flags.models import Flag, FlagState
from flags.services import flag_create, flag_state_set, kill_switch_engage, kill_switch_release
from releasecontrol.audit import audit_verify
from releasecontrol.models import AuditEvent, Environment
from rollouts.emergency_schemas import RollbackOut
from rollouts.models import Rollback

STATE_URL = "/api/v1/flags/new-checkout/environments/{}"
HISTORY_URL = "/api/v1/flags/new-checkout/history"


@pytest.fixture
def call(api_call):
    return api_call


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
    url = STATE_URL.format("staging")
    call(developer, "PATCH", url, {"mode": "allowlist", "allowlist": ["a"], "version": 1})

    response = call(developer, "PATCH", url, {"percentage": 40, "version": 2})

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
        ({"mode": "on", "version": 1}, "mode"),
        ({"mode": None, "version": 1, "percentage": -1}, "percentage"),
        ({"mode": "percentage", "percentage": 101, "version": 1}, "percentage"),
        ({"mode": "percentage", "percentage": 10**40, "version": 1}, "percentage"),
        ({"mode": "percentage", "percentage": "50", "version": 1}, "percentage"),
        ({"mode": "percentage", "percentage": 50.0, "version": 1}, "percentage"),
        ({"percentage": True, "version": 1}, "percentage"),
        ({"allowlist": "user-1,user-2", "version": 1}, "allowlist"),
        ({"allowlist": ["ok", ""], "version": 1}, "allowlist"),
        ({"allowlist": [["nested"]], "version": 1}, "allowlist[0]"),
        ({"allowlist": {"a": 1}, "version": 1}, "allowlist"),
        ({"mode": "full", "colour": "green", "version": 1}, "colour"),
        ({"mode": "full"}, "version"),
        ({"mode": "full", "version": None}, "version"),
        ({"mode": "full", "version": "1"}, "version"),
        ({"mode": "full", "version": 0}, "version"),
        ({"mode": "full", "version": 1.0}, "version"),
        ({"mode": "full", "version": True}, "version"),
        ({"mode": "full", "version": 10**30}, "version"),
        ({"mode": "full", "version": [1]}, "version"),
        ({"mode": "full", "version": 1, "reason": 5}, "reason"),
        ({"mode": "full", "version": 1, "reason": ["why"]}, "reason"),
    ],
)
def test_flag_state_patch__bad_input__400_says_what_to_fix_and_nothing_changes(
    call, developer, staging, flag, body, mentions
):
    response = call(developer, "PATCH", STATE_URL.format("staging"), body)
    assert response.status_code == 400, response.content
    assert mentions in response.json()["detail"]
    assert state_of(flag, staging)["version"] == 1


@pytest.mark.parametrize("raw", [b"mode=full", b"[]", b"null", b'[{"mode": "full", "version": 1}]'])
def test_flag_state_patch__not_a_json_object__400(call, developer, staging, flag, raw):
    response = call(developer, "PATCH", STATE_URL.format("staging"), raw=raw)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_json"
    assert "JSON" in response.json()["detail"]
    assert state_of(flag, staging)["version"] == 1


def test_flag_state_patch__without_version__400_read_the_state_first(
    call, developer, staging, flag
):
    response = call(developer, "PATCH", STATE_URL.format("staging"), {"mode": "full"})
    assert response.status_code == 400
    assert response.json()["detail"].startswith("version: required: read the current state")
    assert state_of(flag, staging)["mode"] == "off"
    assert not AuditEvent.objects.filter(action="flag.state.set").exists()


def test_flag_state_patch__production_without_reason__400_asks_for_one(
    call, oncall, production, flag
):
    response = call(oncall, "PATCH", STATE_URL.format("production"), {"mode": "full", "version": 1})
    assert response.status_code == 400
    assert "reason" in response.json()["detail"]
    assert state_of(flag, production)["mode"] == "off"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("who", "username"), [("developer", "dev"), ("agent", "ci-bot")])
def test_flag_state_patch__developer_or_agent_in_production__409_names_request_denial_audited(
    request, call, developer, production, who, username
):
    flag = flag_create(actor=developer, key="new-checkout", name="New checkout")
    actor = request.getfixturevalue(who)

    response = call(
        actor,
        "PATCH",
        STATE_URL.format("production"),
        {"mode": "percentage", "percentage": 10, "version": 1, "reason": "ship it"},
    )

    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "approval_required"
    assert body["detail"].startswith("Refused:")
    assert "POST /api/v1/approvals" in body["detail"]
    assert body["request"] == {
        "action": "flag.state.set",
        "environment": "production",
        "parameters": {
            "flag": "new-checkout",
            "mode": "percentage",
            "percentage": 10,
            "allowlist": [],
        },
    }
    denied = last_event(outcome="denied")
    assert (denied.action, denied.actor_name, denied.environment_id) == (
        "flag.state.set",
        username,
        "production",
    )
    assert denied.after["requested"]["mode"] == "percentage"
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
        {"mode": "percentage", "percentage": 10, "version": 1, "reason": "canary"},
    )
    rollback = call(oncall, "POST", "/api/v1/environments/production/rollback", {"reason": "5xx"})
    assert rollback.status_code == 200

    increase = call(
        release_manager,
        "PATCH",
        STATE_URL.format("production"),
        {"mode": "percentage", "percentage": 10, "version": 3, "reason": "try again"},
    )
    decrease = call(
        release_manager,
        "PATCH",
        STATE_URL.format("production"),
        {"mode": "shadow", "version": 3, "reason": "shadow traffic while we look"},
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
        release_manager,
        "PATCH",
        STATE_URL.format("production"),
        {"mode": "full", "version": 1, "reason": "go"},
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
    response = call(developer, "PATCH", path, {"mode": "full", "version": 1})
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


# --- POST /api/v1/environments/{environment}/rollback (rollouts' emergency rollback) ---------


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
    rollback = Rollback.objects.get()
    assert (body["rollback"], body["releases_stopped"]) == (rollback.pk, [])
    assert body["snapshot_url"] == f"/rollbacks/{rollback.pk}/"
    assert [(t["flag"], t["before"]["mode"]) for t in body["turned_off"]] == [
        ("new-checkout", "full"),
        ("ocr", "percentage"),
    ]
    assert body["kill_switch"]["engaged_by"] == "omar"
    # Every item has the documented shape (the states skip the schema on the way out).
    assert RollbackOut.model_validate(body).model_dump(mode="json")["turned_off"] == [
        {"flag": "new-checkout", "before": {"mode": "full", "percentage": 0, "allowlist": [],
                                            "version": 2}},
        {"flag": "ocr", "before": {"mode": "percentage", "percentage": 30, "allowlist": [],
                                   "version": 2}},
    ]  # fmt: skip
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
    assert second.json()["rollback"] == rollback.pk
    assert "already rolled back by omar" in second.json()["detail"]
    assert AuditEvent.objects.filter(action="killswitch.engage").count() == 1
    assert AuditEvent.objects.filter(action="environment.rollback").count() == 1


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
        "environment.rollback",
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
    response = call(developer, "GET", HISTORY_URL + "?environment=staging")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"items", "next"} and body["next"] is None
    events = body["items"]
    assert events[0]["action"] == "flag.state.set" and events[0]["after"]["mode"] == "full"
    assert events[0]["id"] == last_event(action="flag.state.set").pk
    assert events[-1]["action"] == "flag.create"


def test_flag_history__limit_and_cursor__every_event_once_newest_first(
    call, developer, oncall, staging, flag
):
    for mode in ("full", "shadow", "allowlist", "off"):
        flag_state_set(actor=developer, flag=flag, environment=staging, mode=mode)
    flag_state_set(actor=developer, flag=flag, environment=staging, mode="full")
    call(oncall, "POST", "/api/v1/environments/staging/rollback", {"reason": "errors"})
    expected = list(
        AuditEvent.objects.filter(
            Q(target_type="flag", target_id=str(flag.pk)) | Q(action="killswitch.engage")
        )
        .order_by("-id")
        .values_list("id", flat=True)
    )

    seen, cursor, pages = [], None, 0
    while True:
        url = HISTORY_URL + "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        body = call(developer, "GET", url).json()
        seen += [e["id"] for e in body["items"]]
        pages += 1
        cursor = body["next"]
        if cursor is None:
            break

    assert seen == expected and len(seen) == 7  # create, 5 changes, the kill switch
    assert pages == 4
    kill = call(developer, "GET", HISTORY_URL + "?limit=1").json()["items"][0]
    assert kill["action"] == "killswitch.engage"
    assert [s["flag"] for s in kill["before"]["states"]] == ["new-checkout"]


@pytest.mark.parametrize(
    ("query", "status", "names"),
    [
        ("?limit=1000", 400, "limit"),
        ("?limit=-1", 400, "limit"),
        ("?cursor=eyJrZXkiOiJhIn0", 400, "cursor"),  # a flag list's cursor
        ("?cursor=eyJpZCI6OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTl9", 400, "cursor"),  # id past int64
        ("?environment=moon", 404, ""),
    ],
)
def test_flag_history__bad_query__400_or_404(call, developer, flag, query, status, names):
    response = call(developer, "GET", HISTORY_URL + query)
    assert response.status_code == status, response.content
    assert response.json()["detail"].startswith(names)


def test_flag_state_restore__after_kill_switch_and_release__brings_back_the_state(
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
    kill_switch_engage(actor=oncall, environment=production, scope="environment", reason="5xx")
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


WRITES = [
    ("POST", "/api/v1/flags"),
    ("PATCH", STATE_URL.format("staging")),
    ("POST", STATE_URL.format("staging") + "/restore"),
    ("POST", "/api/v1/environments/staging/rollback"),
]
ODD_BODIES = [
    [],
    [{"mode": "full", "version": 1}],
    None,
    "text",
    12,
    {"version": 10**30, "event_id": 10**30, "percentage": -(10**30)},
    {"version": None, "event_id": None, "reason": None, "key": None},
    {"version": {}, "event_id": [], "reason": {}, "allowlist": [None]},
    {"mode": ["full"], "side": 1, "tags": [[]], "on_value": {"a": [{"b": [[[]]]}]}},
    {"": 1},
]


@pytest.mark.parametrize(("method", "path"), WRITES)
@pytest.mark.parametrize("body", ODD_BODIES, ids=range(len(ODD_BODIES)))
def test_write_endpoint__odd_json__400_json_never_5xx_nothing_changed(
    call, oncall, staging, flag, method, path, body
):
    response = call(oncall, method, path, body)
    assert response.status_code == 400, response.content
    assert response.json()["error"] in ("invalid", "invalid_json", "unknown_field")
    assert response.json()["detail"]
    assert state_of(flag, staging)["version"] == 1
    assert not Environment.objects.get(pk=staging.pk).kill_switch_engaged


def test_flag_create__integer_flag_with_huge_values__201_and_chain_verifies(call, developer):
    body = {"key": "big", "type": "integer", "on_value": 10**30, "off_value": -(10**30)}
    response = call(developer, "POST", "/api/v1/flags", body)
    assert response.status_code == 201, response.content
    assert response.json()["on_value"] == 10**30
    assert audit_verify().ok
