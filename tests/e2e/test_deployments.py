"""A deployment in a real Chromium: a pipeline (an agent's token, through the API) registers
a production deployment; two release managers give their go in the browser; the on-call
executes it; the pipeline sees go, reports success; the history row and the DORA figures
show it. Set E2E_SCREENSHOTS=/some/dir to keep pictures."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import requests
from django.utils import timezone
from playwright.sync_api import Page, expect

from releasecontrol.models import Environment, User
from releasecontrol.services import environment_configure, role_grant, user_create
from rollouts.models import Deployment
from tests.e2e.browser import screenshot, sign_in
from tests.factories import PASSWORD

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ARTIFACT = "sha256:" + "ab" * 32


@pytest.fixture
def second_release_manager(db):
    user = user_create(actor=User.system(), username="rhea", password=PASSWORD)
    role_grant(actor=User.system(), user=user, role="release_manager")
    return user


class Pipeline:
    def __init__(self, base: str, token: str) -> None:
        self.api = f"{base}/api/v1"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, body=None, **headers) -> requests.Response:
        return self.session.request(method, self.api + path, json=body, headers=headers, timeout=30)

    def register(self, environment: str) -> dict:
        body = {
            "environment": environment,
            "service": "checkout-api",
            "version": "2.4.0",
            "commit": "9f1c2ab",
            "commit_time": (timezone.now() - dt.timedelta(hours=3)).isoformat(),
            "artifact": ARTIFACT,
            "notes": "New payment form",
        }
        response = self.call("POST", "/deployments", body, **{"Idempotency-Key": environment})
        assert response.status_code == 201, response.text
        return response.json()

    def report(self, deployment: dict, event: str, smoke=None) -> dict:
        response = self.call(
            "POST",
            f"/deployments/{deployment['id']}/events",
            {"event": event, "smoke_tests": smoke},
        )
        assert response.status_code == 200, response.text
        return response.json()


def _go(page: Page, base: str, user: User, request_id: int, expected: str) -> None:
    sign_in(page, base, user)
    page.goto(f"{base}/approvals/{request_id}/")
    page.get_by_test_id("decide-go").locator("summary").click()
    expect(page.get_by_test_id("confirm-text-go")).to_contain_text(
        "checkout-api in production: artifact — → " + ARTIFACT
    )
    page.get_by_test_id("comment-go").fill("Staging green for a day")
    page.get_by_test_id("confirm-go").click()
    expect(page.get_by_test_id("status")).to_have_text(expected.capitalize())


def test_deployment__pipeline_registers_two_gos_oncall_executes__history_and_dora_show_it(
    page: Page,
    live_server,
    api_token_for,
    release_manager,
    second_release_manager,
    oncall,
    agent,
) -> None:
    base = live_server.url
    production = Environment.objects.get(slug="production")
    environment_configure(
        actor=User.system(), environment=production, approvals_required=2, reason="two people"
    )
    pipeline = Pipeline(base, api_token_for(agent))
    staged = pipeline.register("staging")
    assert staged["status"] == "go"
    pipeline.report(staged, "started")
    pipeline.report(staged, "succeeded", {"passed": 12, "failed": 0})

    made = pipeline.register("production")
    assert made["status"] == "awaiting_approval"
    polled = pipeline.call("GET", f"/deployments/{made['id']}")
    assert polled.json()["status"] == "awaiting_approval" and int(polled.headers["Retry-After"])
    approval = pipeline.call("GET", f"/approvals/{made['approval']}").json()
    for item in approval["checklist"]:
        if item["required"]:
            checked = pipeline.call(
                "PATCH",
                f"/approvals/{made['approval']}/checklist/{item['id']}",
                {"checked": True, "evidence": "https://ci.example/run/81"},
            )
            assert checked.status_code == 200, checked.text

    _go(page, base, release_manager, made["approval"], "pending")
    _go(page, base, second_release_manager, made["approval"], "approved")
    refused = pipeline.call("POST", f"/approvals/{made['approval']}/execute", {"reason": "go"})
    assert refused.status_code == 403, "an agent never gives the go"

    sign_in(page, base, oncall)
    page.goto(f"{base}/approvals/{made['approval']}/")
    page.get_by_test_id("execute").locator("summary").click()
    page.get_by_test_id("execute-reason").fill("Deploy window, error rate flat")
    page.get_by_test_id("confirm-execute").click()
    expect(page.get_by_test_id("status")).to_have_text("Executed")

    seen = pipeline.call("GET", f"/deployments/{made['id']}").json()
    assert (seen["status"], seen["executed_by"]) == ("go", oncall.username)
    assert seen["approved_by"] == [release_manager.username, second_release_manager.username]
    pipeline.report(made, "started")
    done = pipeline.report(made, "succeeded", {"passed": 14, "failed": 0})
    assert done["status"] == "succeeded"

    page.get_by_test_id("nav-deployments").click()
    row = page.get_by_test_id(f"deployment-{made['id']}")
    expect(row).to_have_class(re.compile(r"\brow-production\b"))
    expect(page.get_by_test_id(f"status-{made['id']}")).to_have_text("succeeded")
    expect(page.get_by_test_id(f"approved-by-{made['id']}")).to_have_text("rita, rhea")
    expect(page.get_by_test_id(f"executed-by-{made['id']}")).to_have_text(oncall.username)
    expect(page.get_by_test_id(f"smoke-{made['id']}")).to_have_text("14 passed, 0 failed")
    screenshot(page, "deployment-history")

    page.goto(f"{base}/dora/?environment=production&days=7")
    expect(page.get_by_test_id("frequency")).to_have_text("0.14")  # 1 success in 7 days
    expect(page.get_by_test_id("cfr")).to_have_text("0%")
    expect(page.get_by_test_id("chart-frequency")).to_have_attribute("data-ready", "true")
    screenshot(page, "dora")
    assert Deployment.objects.get(pk=made["id"]).succeeded_at is not None
