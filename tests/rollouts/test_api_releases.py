"""The releases and metrics endpoints: shapes, refusals, hostile input, query counts."""

import json

import pytest

from releasecontrol.models import AuditEvent
from rollouts.models import MetricSample, Release
from tests.rollouts.conftest import GATE
from tests.rollouts.factories import GateEvaluationFactory

BODY = {
    "name": "checkout-v2",
    "version": "2.4.0",
    "environment": "staging",
    "flags": ["new-checkout"],
    "plan": "five-stage",
    "gates": [GATE],
    "dead_man_seconds": 300,
}


def _create(api_call, user, **changes):
    return api_call(user, "POST", "/api/v1/releases", {**BODY, **changes})


def test_post_releases__developer_in_staging__201_draft_with_stages_and_gates(
    api_call, developer, flag
):
    response = _create(api_call, developer)

    body = response.json()
    assert response.status_code == 201, body
    assert body["status"] == "draft" and body["current_stage"] is None
    assert [s["name"] for s in body["stages"]] == [
        "infrastructure",
        "canary",
        "partial",
        "majority",
        "full",
    ]
    assert body["gates"][0]["name"] == "errors" and body["gates"][0]["latest"] is None


def test_post_release_start__then_get__current_stage_and_latest_evaluation(
    api_call, developer, flag
):
    pk = _create(api_call, developer).json()["id"]

    started = api_call(developer, "POST", f"/api/v1/releases/{pk}/start", {"reason": "go"})
    gate = Release.objects.get(pk=pk).gates.get()
    GateEvaluationFactory(gate=gate, outcome="failure", value=7.2, samples=12)
    body = api_call(developer, "GET", f"/api/v1/releases/{pk}").json()

    assert started.status_code == 200
    assert started.json()["current_stage"] == {
        "index": 0,
        "name": "infrastructure",
        "mode": "off",
        "percentage": 0,
    }
    latest = body["gates"][0]["latest"]
    assert (latest["outcome"], latest["value"], latest["samples"]) == ("failure", 7.2, 12)
    assert body["stage_entered_at"] is not None


def test_post_release_start__agent_in_production__409_names_the_request_and_recorded(
    api_call, release_manager, agent, flag
):
    pk = _create(api_call, release_manager, environment="production").json()["id"]

    response = api_call(agent, "POST", f"/api/v1/releases/{pk}/start", {"reason": "go"})

    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "approval_required"
    assert body["request"] == {
        "action": "release.start",
        "environment": "production",
        "parameters": {"release": pk},
    }
    assert AuditEvent.objects.filter(actor=agent, outcome="denied").exists()
    assert Release.objects.get(pk=pk).status == "draft"


def test_post_release_start__agent_on_a_release_already_started__403(
    api_call, release_manager, agent, flag
):
    pk = _create(api_call, release_manager, environment="production").json()["id"]
    Release.objects.filter(pk=pk).update(status="in_progress", current_stage_index=0)

    response = api_call(agent, "POST", f"/api/v1/releases/{pk}/start", {"reason": "go"})

    assert response.status_code == 403  # no request would be heard: it has started


def test_post_release_start__release_manager_in_production__409_names_the_request(
    api_call, release_manager, flag
):
    pk = _create(api_call, release_manager, environment="production").json()["id"]

    response = api_call(release_manager, "POST", f"/api/v1/releases/{pk}/start", {"reason": "x"})

    assert response.status_code == 409
    assert response.json()["error"] == "approval_required"
    assert response.json()["request"]["action"] == "release.start"


def test_post_releases__production_plan_without_an_acting_gate__400_naming_gates(
    api_call, release_manager, flag
):
    response = _create(
        api_call, release_manager, environment="production", gates=[{**GATE, "advisory": True}]
    )

    assert response.status_code == 400
    assert "gates" in response.json()["detail"] and "acts" in response.json()["detail"]


@pytest.mark.parametrize(
    ("raw_changes", "field"),
    [
        # NaN and Infinity are no JSON numbers: refused at the edge, naming them.
        ('"gates": [{"name": "e", "metric": "m", "threshold": NaN}]', "NaN"),
        ('"gates": [{"name": "e", "metric": "m", "threshold": Infinity}]', "Infinity"),
        ('"gates": [{"name": "e", "metric": "m", "threshold": 1e300}]', "gates[0].threshold"),
        ('"gates": [{"name": "e", "metric": "m", "threshold": "5"}]', "gates[0].threshold"),
        (
            '"gates": [{"name": "e", "metric": "m", "threshold": 1, "window_seconds": 0}]',
            "gates[0].window_seconds",
        ),
        (
            '"gates": [{"name": "e", "metric": "m", "threshold": 1, "source": {"prometheus": ""}}]',
            "gates[0].source.prometheus",
        ),
        ('"name": "../../etc"', "name"),
        ('"name": "a..b"', "name"),
        ('"plan": {"stages": [{"name": "x", "percentage": 101}]}', "plan.stages[0].percentage"),
        ('"plan": "six-stage"', "plan"),
        ('"flags": ["no-such-flag"]', "flags[0]"),
        (
            '"gates": [{"name": "e", "metric": "m", "threshold": 1, "stage": "nope"}]',
            "gates[0].stage",
        ),
    ],
)
def test_post_releases__hostile_input__400_naming_the_field_and_nothing_written(
    api_call, developer, flag, raw_changes, field
):
    base = json.dumps({k: v for k, v in BODY.items() if k not in raw_changes.split('"')[1]})
    raw = (base[:-1] + ", " + raw_changes + "}").encode()
    api_call(developer, "GET", "/api/v1/me")  # the token's own audit event, before counting
    events = AuditEvent.objects.count()

    response = api_call(developer, "POST", "/api/v1/releases", raw=raw)

    assert response.status_code == 400, response.json()
    assert field in response.json()["detail"]
    assert Release.objects.count() == 0
    assert AuditEvent.objects.count() == events


def test_patch_release__live_release__pauses_and_the_editor_joins_plan_editors(
    api_call, developer, release_manager, flag
):
    pk = _create(api_call, developer).json()["id"]
    api_call(developer, "POST", f"/api/v1/releases/{pk}/start", {"reason": "go"})

    response = api_call(
        release_manager,
        "PATCH",
        f"/api/v1/releases/{pk}",
        {"gates": [{**GATE, "threshold": 3}], "reason": "tighter"},
    )

    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "paused"
    assert response.json()["gates"][0]["threshold"] == 3
    assert list(Release.objects.get(pk=pk).plan_editors.all()) == [release_manager]


def test_get_releases__a_page_of_releases__fixed_query_count(
    api_call, developer, flag, django_assert_max_num_queries
):
    for n in range(6):
        _create(api_call, developer, name=f"r{n}")
    api_call(developer, "GET", "/api/v1/releases?limit=2")  # token issued, caches warm

    with django_assert_max_num_queries(12):
        response = api_call(developer, "GET", "/api/v1/releases?limit=5")

    assert len(response.json()["items"]) == 5 and response.json()["next"]


def _samples(pk, n, **fields):
    return {
        "samples": [
            {
                "environment": "staging",
                "release": pk,
                "metric": "error_rate",
                "value": 1.0,
                **fields,
            }
            for _ in range(n)
        ]
    }


def test_post_metrics__good_batch__202_accepted_and_samples_paged(api_call, agent, developer, flag):
    pk = _create(api_call, developer).json()["id"]

    response = api_call(agent, "POST", "/api/v1/metrics", _samples(pk, 3))
    listed = api_call(developer, "GET", f"/api/v1/releases/{pk}/samples?metric=error_rate&limit=2")

    assert response.status_code == 202 and response.json() == {"accepted": 3}
    assert len(listed.json()["items"]) == 2 and listed.json()["next"]
    assert listed.json()["items"][0]["submitted_by"] == "ci-bot"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("huge", "samples"),
        ({"time": "yesterday"}, "samples[1].time"),
        ({"time": "2026-12-01T10:00:00"}, "samples[1].time"),
        ({"time": "2000-01-01T00:00:00Z"}, "samples[1]"),
        ({"value": "NaN"}, "samples[1].value"),
    ],
)
def test_post_metrics__hostile_input__400_naming_the_sample_and_none_kept(
    api_call, agent, developer, flag, body, field
):
    pk = _create(api_call, developer).json()["id"]
    if body == "huge":
        payload = _samples(pk, 5001)
    else:
        payload = _samples(pk, 2)
        payload["samples"][1].update(body)

    response = api_call(agent, "POST", "/api/v1/metrics", payload)

    assert response.status_code == 400, response.json()
    assert field in response.json()["detail"]
    assert MetricSample.objects.count() == 0


def test_post_metrics__same_idempotency_key__kept_once(api_call, agent, developer, flag):
    pk = _create(api_call, developer).json()["id"]
    headers = {"Idempotency-Key": "batch-1"}

    first = api_call(agent, "POST", "/api/v1/metrics", _samples(pk, 2), headers=headers)
    again = api_call(agent, "POST", "/api/v1/metrics", _samples(pk, 2), headers=headers)

    assert first.status_code == again.status_code == 202
    assert MetricSample.objects.count() == 2


def test_post_release_resume__draft__409_saying_its_status(api_call, developer, flag):
    pk = _create(api_call, developer).json()["id"]

    response = api_call(developer, "POST", f"/api/v1/releases/{pk}/resume", {"reason": "x"})

    assert response.status_code == 409
    assert response.json()["error"] == "release_state"
    assert response.json()["release_status"] == "draft"
