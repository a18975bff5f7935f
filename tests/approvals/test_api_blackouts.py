"""Blackout windows (/api/v1/environments/{environment}/blackouts, /api/v1/blackouts/{id}) and
checklist templates (/api/v1/checklists) through the API: release managers manage windows,
everyone else is refused and recorded; bad windows are 400 naming the field."""

from __future__ import annotations

import pytest

from approvals.models import BlackoutWindow
from releasecontrol.models import AuditEvent, IdempotencyKey

URL = "/api/v1/environments/{}/blackouts"
WEEKEND = {
    "weekly": {"day": "fri", "start": "15:00", "end_day": "mon", "end": "08:00"},
    "time_zone": "Europe/Berlin",
    "reason": "No changes over the weekend",
}
FREEZE = {
    "starts_at": "2026-03-04T09:00:00Z",
    "ends_at": "2026-03-04T11:00:00Z",
    "reason": "Payments freeze",
}


@pytest.fixture
def call(api_call):
    return api_call


def test_blackout_window_create__weekly_in_a_zone__201_and_audited(call, world):
    response = call(world["rita"], "POST", URL.format("production"), WEEKEND)

    assert response.status_code == 201, response.json()
    answer = response.json()
    window = BlackoutWindow.objects.get()
    assert answer == {
        "id": window.pk,
        "environment": "production",
        "kind": "weekly",
        "reason": "No changes over the weekend",
        "starts_at": None,
        "ends_at": None,
        "weekly": {"day": "fri", "start": "15:00", "end_day": "mon", "end": "08:00"},
        "time_zone": "Europe/Berlin",
        "open_now": False,  # the clock says Wednesday
        "created_by": "rita",
        "created_at": "2026-03-04T10:00:00+00:00",
        "deleted_at": None,
        "deleted_by": None,
    }
    event = AuditEvent.objects.get(action="blackout.create")
    assert (event.actor_name, event.outcome, event.environment_id) == ("rita", "ok", "production")


def test_blackout_window_create__one_off_now__201_open_now(call, world):
    response = call(world["rhea"], "POST", URL.format("staging"), FREEZE)
    assert response.status_code == 201
    answer = response.json()
    assert (answer["kind"], answer["open_now"], answer["weekly"]) == ("one_off", True, None)
    assert answer["starts_at"] == "2026-03-04T09:00:00+00:00"


def test_blackout_window_create__weekly_without_end_day__the_same_day(call, world):
    sent = {"weekly": {"day": "wed", "start": "09:00", "end": "12:00"}, "reason": "Standup"}
    response = call(world["rita"], "POST", URL.format("production"), sent)
    assert response.status_code == 201
    assert response.json()["weekly"]["end_day"] == "wed"
    assert response.json()["open_now"] is True


@pytest.mark.parametrize("who", ["ci-bot", "rogue-bot", "dev", "omar", "audrey"])
def test_blackout_window_create__not_a_release_manager__403_recorded(call, world, who):
    response = call(world[who], "POST", URL.format("production"), WEEKEND)
    assert response.status_code == 403
    denied = AuditEvent.objects.get(outcome="denied")
    assert (denied.action, denied.actor_name) == ("blackout.create", who)
    assert not BlackoutWindow.objects.exists()


@pytest.mark.parametrize(
    ("sent", "names"),
    [
        ({**WEEKEND, "reason": ""}, "reason"),
        ({**WEEKEND, "time_zone": "Mars/Olympus"}, "time_zone"),
        ({**WEEKEND, "weekly": {**WEEKEND["weekly"], "day": "friday"}}, "weekly.day"),
        ({**WEEKEND, "weekly": {**WEEKEND["weekly"], "start": "25:00"}}, "weekly.start"),
        ({**WEEKEND, "weekly": {"day": "fri", "start": "15:00", "end": "15:00"}}, "weekly"),
        ({**WEEKEND, "starts_at": "2026-03-04T09:00:00Z"}, "weekly"),
        ({**FREEZE, "ends_at": "2026-03-04T08:00:00Z"}, "ends_at"),
        ({**FREEZE, "ends_at": "2026-03-04T11:00:00"}, "ends_at"),
        ({"starts_at": FREEZE["starts_at"], "reason": "x"}, "starts_at"),
        ({**FREEZE, "colour": "red"}, "colour"),
    ],
)
def test_blackout_window_create__bad_window__400_names_the_field(call, world, sent, names):
    response = call(world["rita"], "POST", URL.format("production"), sent)
    assert response.status_code == 400, response.json()
    assert names in response.json()["detail"]
    assert not BlackoutWindow.objects.exists()


def test_blackout_window_create__unknown_environment__404(call, world):
    response = call(world["rita"], "POST", URL.format("moon"), FREEZE)
    assert response.status_code == 404


def test_blackout_window_create__same_idempotency_key__one_window(call, world):
    headers = {"Idempotency-Key": "weekend-1"}
    first = call(world["rita"], "POST", URL.format("production"), WEEKEND, headers=headers)
    retry = call(world["rita"], "POST", URL.format("production"), WEEKEND, headers=headers)
    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert BlackoutWindow.objects.count() == 1 == IdempotencyKey.objects.count()


def test_blackout_window_list__any_account__this_environment_s_windows_paged(call, world):
    for n in range(3):
        call(world["rita"], "POST", URL.format("production"), {**FREEZE, "reason": f"r{n}"})
    call(world["rita"], "POST", URL.format("staging"), FREEZE)

    first = call(world["ci-bot"], "GET", URL.format("production") + "?limit=2").json()
    second = call(world["ci-bot"], "GET", URL.format("production") + f"?cursor={first['next']}")

    assert [w["reason"] for w in first["items"]] == ["r0", "r1"]
    assert [w["reason"] for w in second.json()["items"]] == ["r2"]
    assert second.json()["next"] is None
    assert call(world["ci-bot"], "GET", URL.format("moon")).status_code == 404


def test_blackout_window_delete__release_manager__200_gone_from_the_list_kept_in_audit(call, world):
    made = call(world["rita"], "POST", URL.format("production"), FREEZE).json()

    response = call(world["rhea"], "DELETE", f"/api/v1/blackouts/{made['id']}?reason=Lifted")

    assert response.status_code == 200
    answer = response.json()
    assert (answer["deleted_by"], answer["deleted_at"]) == ("rhea", "2026-03-04T10:00:00+00:00")
    assert answer["open_now"] is False  # removed: it holds no more
    assert call(world["rhea"], "GET", URL.format("production")).json()["items"] == []
    window = BlackoutWindow.objects.get()
    assert (window.deleted_by, window.reason) == (world["rhea"], "Payments freeze")
    event = AuditEvent.objects.get(action="blackout.delete")
    assert (event.actor_name, event.reason) == ("rhea", "Lifted")
    again = call(world["rhea"], "DELETE", f"/api/v1/blackouts/{made['id']}")
    assert again.status_code == 404


@pytest.mark.parametrize("who", ["ci-bot", "dev", "omar"])
def test_blackout_window_delete__not_a_release_manager__403_recorded_window_stays(call, world, who):
    made = call(world["rita"], "POST", URL.format("production"), FREEZE).json()
    response = call(world[who], "DELETE", f"/api/v1/blackouts/{made['id']}")
    assert response.status_code == 403
    assert AuditEvent.objects.get(outcome="denied").action == "blackout.delete"
    assert BlackoutWindow.objects.active().count() == 1


@pytest.mark.parametrize(("path", "status"), [("999999", 404), ("x", 400)])
def test_blackout_window_delete__unknown_or_bad_id__404_or_400(call, world, path, status):
    assert call(world["rita"], "DELETE", f"/api/v1/blackouts/{path}").status_code == status


# --- GET /api/v1/checklists -----------------------------------------------------------------


def test_checklist_template_list__any_account__templates_by_slug_with_items(call, world):
    response = call(world["ci-bot"], "GET", "/api/v1/checklists")

    assert response.status_code == 200
    answer = response.json()
    assert [t["slug"] for t in answer["items"]] == ["deployment", "short"]
    deployment = answer["items"][0]
    assert deployment["name"] == "Deployment checklist"
    assert len(deployment["items"]) == 19
    assert deployment["items"][1] == {
        "section": "Tests passed",
        "text": "Unit tests passed (X/Y)",
        "required": True,
        "evidence_required": True,
    }
    paged = call(world["ci-bot"], "GET", "/api/v1/checklists?limit=1").json()
    rest = call(world["ci-bot"], "GET", f"/api/v1/checklists?cursor={paged['next']}").json()
    assert [t["slug"] for t in paged["items"] + rest["items"]] == ["deployment", "short"]
