"""The deployment endpoints: register (Idempotency-Key), poll with Retry-After, report,
cancel, list; hostile input answered 400 naming the field with nothing written."""

import pytest

from releasecontrol.models import AuditEvent
from rollouts.models import Deployment

from .deploying import ARTIFACT, approve, complete_checklist, execute, staged

pytestmark = pytest.mark.django_db

BODY = {
    "environment": "staging",
    "service": "checkout-api",
    "version": "2.4.0",
    "commit": "9f1c2ab",
    "commit_time": "2026-03-04T08:12:00Z",
    "artifact": ARTIFACT,
    "kind": "standard",
    "release": None,
    "notes": "",
}


def test_post__staging_agent__201_go_with_no_approval(clock, people, api_call):
    response = api_call(people["ci-bot"], "POST", "/api/v1/deployments", BODY)

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["status"], body["approval"], body["requested_by"]) == ("go", None, "ci-bot")
    assert body["events"][0]["event"] == "registered"


def test_post__production__awaiting_approval_then_poll_sees_go(clock, people, api_call):
    staged(people["ci-bot"])
    made = api_call(
        people["ci-bot"], "POST", "/api/v1/deployments", {**BODY, "environment": "production"}
    ).json()
    assert made["status"] == "awaiting_approval" and made["approval"]

    waiting = api_call(people["ci-bot"], "GET", f"/api/v1/deployments/{made['id']}")
    assert waiting["Retry-After"] == "10" and waiting.json()["retry_after"] == 10

    deployment = Deployment.objects.get(pk=made["id"])
    complete_checklist(deployment, people["ci-bot"])
    approve(deployment, people["rita"])
    execute(deployment, people["omar"])
    polled = api_call(people["ci-bot"], "GET", f"/api/v1/deployments/{made['id']}")

    assert polled.json()["status"] == "go" and polled.json()["executed_by"] == "omar"
    started = api_call(
        people["ci-bot"], "POST", f"/api/v1/deployments/{made['id']}/events", {"event": "started"}
    )
    assert started.status_code == 200 and started.json()["status"] == "in_progress"
    assert "Retry-After" not in api_call(
        people["ci-bot"], "GET", f"/api/v1/deployments/{made['id']}"
    )


def test_events__started_before_go__409_says_so(clock, people, api_call):
    staged(people["ci-bot"])
    made = api_call(
        people["ci-bot"], "POST", "/api/v1/deployments", {**BODY, "environment": "production"}
    ).json()

    response = api_call(
        people["ci-bot"], "POST", f"/api/v1/deployments/{made['id']}/events", {"event": "started"}
    )

    assert response.status_code == 409
    assert response.json()["error"] == "not_go" and "awaiting approval" in response.json()["detail"]
    assert response.json()["deployment_status"] == "awaiting_approval"


def test_post__production_never_staged__409_not_in_staging(clock, people, api_call):
    response = api_call(
        people["ci-bot"], "POST", "/api/v1/deployments", {**BODY, "environment": "production"}
    )

    assert response.status_code == 409 and response.json()["error"] == "not_in_staging"
    assert "never succeeded in staging" in response.json()["detail"]


def test_post__idempotency_key__replayed_once_other_body_409(clock, people, api_call):
    key = {"Idempotency-Key": "deploy-81"}
    first = api_call(people["ci-bot"], "POST", "/api/v1/deployments", BODY, headers=key)
    again = api_call(people["ci-bot"], "POST", "/api/v1/deployments", BODY, headers=key)
    other = api_call(
        people["ci-bot"], "POST", "/api/v1/deployments", {**BODY, "version": "2.5.0"}, headers=key
    )

    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"] and again["Idempotent-Replayed"] == "true"
    assert other.status_code == 409
    assert Deployment.objects.count() == 1


@pytest.mark.parametrize(
    "field,value",
    [
        ("commit", "not-a-hash"),
        ("artifact", "latest"),
        ("service", "../etc/passwd"),
        ("kind", "yolo"),
        ("commit_time", "yesterday"),
        ("commit_time", "2999-01-01T00:00:00Z"),
        ("environment", "moon"),
        ("release", 999),
        ("version", ""),
        ("notes", "x" * 2001),
        ("unknown", 1),
    ],
)
def test_post__hostile_field__400_naming_it_nothing_written(clock, people, api_call, field, value):
    response = api_call(people["ci-bot"], "POST", "/api/v1/deployments", {**BODY, field: value})

    assert response.status_code == 400, response.json()
    assert field in response.json()["detail"]
    assert not Deployment.objects.exists()
    assert not AuditEvent.objects.filter(action="deployment.register").exists()


@pytest.mark.parametrize(
    "body,field",
    [
        ({"event": "exploded"}, "event"),
        ({"event": "succeeded", "smoke_tests": {"passed": -1}}, "smoke_tests.passed"),
        ({"event": "succeeded", "smoke_tests": {"passed": "12"}}, "smoke_tests.passed"),
        ({"event": "succeeded", "detail": "x" * 2001}, "detail"),
    ],
)
def test_events__hostile_body__400_naming_it_nothing_written(clock, people, api_call, body, field):
    made = api_call(people["ci-bot"], "POST", "/api/v1/deployments", BODY).json()

    response = api_call(people["ci-bot"], "POST", f"/api/v1/deployments/{made['id']}/events", body)

    assert response.status_code == 400 and field in response.json()["detail"]
    assert Deployment.objects.get().status == "go"


def test_events__auditor__403_recorded(clock, people, api_call):
    made = api_call(people["ci-bot"], "POST", "/api/v1/deployments", BODY).json()

    response = api_call(
        people["audrey"], "POST", f"/api/v1/deployments/{made['id']}/events", {"event": "started"}
    )

    assert response.status_code == 403
    assert AuditEvent.objects.filter(action="deployment.report", outcome="denied").exists()


def test_cancel__go__200_cancelled(clock, people, api_call):
    made = api_call(people["ci-bot"], "POST", "/api/v1/deployments", BODY).json()

    response = api_call(people["ci-bot"], "POST", f"/api/v1/deployments/{made['id']}/cancel", {})

    assert response.status_code == 200 and response.json()["status"] == "cancelled"


def test_list__filters_and_pages__fixed_queries(
    clock, people, api_call, django_assert_max_num_queries
):
    for version in ("1.0.0", "1.1.0", "1.2.0"):
        api_call(people["ci-bot"], "POST", "/api/v1/deployments", {**BODY, "version": version})
    api_call(people["ci-bot"], "POST", "/api/v1/deployments", {**BODY, "service": "search"})
    api_call(people["ci-bot"], "GET", "/api/v1/me")  # the token's first use

    with django_assert_max_num_queries(6):
        first = api_call(
            people["ci-bot"],
            "GET",
            "/api/v1/deployments?environment=staging&service=checkout-api&limit=2",
        ).json()
    rest = api_call(
        people["ci-bot"], "GET", f"/api/v1/deployments?service=checkout-api&cursor={first['next']}"
    ).json()

    assert [d["version"] for d in first["items"]] == ["1.2.0", "1.1.0"]
    assert [d["version"] for d in rest["items"]] == ["1.0.0"] and rest["next"] is None
    go = api_call(people["ci-bot"], "GET", "/api/v1/deployments?status=go").json()
    assert len(go["items"]) == 4


def test_get__unknown__404_json(clock, people, api_call):
    response = api_call(people["ci-bot"], "GET", "/api/v1/deployments/424242")

    assert response.status_code == 404 and response.json()["error"] == "not_found"
