"""The deployment history (filters, CSV), a deployment's page and the DORA page."""

import datetime as dt

import pytest
from django.urls import reverse

from releasecontrol.csvwriter import restore
from tests.rollouts.factories import DeploymentFactory

from .deploying import env, gone, report

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(clock, people):
    deployment = gone(people)
    report(deployment, people["ci-bot"], "started", "succeeded", smoke={"passed": 12, "failed": 0})
    DeploymentFactory(environment=env("staging"), service="search", notes='=HYPERLINK("x")')
    return deployment


def test_history__rows__production_red_with_approvers_and_smoke(client, people, history):
    client.force_login(people["audrey"])

    response = client.get(reverse("rollouts:deployments"))

    page = response.content.decode()
    assert response.status_code == 200
    assert f'data-testid="deployment-{history.pk}"' in page
    row = page.split(f'data-testid="deployment-{history.pk}"')[0].rsplit("<tr", 1)[1]
    assert "row-production" in row
    assert "12 passed, 0 failed" in page and ">rita<" in page and ">omar<" in page


def test_history__filters__environment_service_status_time(client, people, history):
    client.force_login(people["audrey"])

    staging = client.get(reverse("rollouts:deployments"), {"environment": "staging"})
    succeeded = client.get(
        reverse("rollouts:deployments"), {"status": "succeeded", "service": "checkout-api"}
    )
    later = client.get(reverse("rollouts:deployments"), {"since": "2026-03-05"})

    assert f'deployment-{history.pk}"' not in staging.content.decode()
    assert f'deployment-{history.pk}"' in succeeded.content.decode()
    assert "No deployments here." in later.content.decode()


def test_history__bad_filter__400_says_which(client, people, history):
    client.force_login(people["audrey"])

    response = client.get(
        reverse("rollouts:deployments"), {"since": "2026-03-05", "until": "2026-03-01"}
    )

    assert response.status_code == 400 and "until" in response.content.decode()


def test_history__query_count__fixed_whatever_the_rows(
    client, people, history, django_assert_max_num_queries
):
    client.force_login(people["audrey"])
    client.get(reverse("rollouts:deployments"))
    DeploymentFactory.create_batch(30, environment=env("production"))

    with django_assert_max_num_queries(12):
        response = client.get(reverse("rollouts:deployments"))

    assert response.content.decode().count('data-testid="deployment-link-') == 33


def test_export__csv__formula_cells_neutralised(client, people, history):
    client.force_login(people["audrey"])

    response = client.get(reverse("rollouts:deployments_csv"))

    lines = response.content.decode().splitlines()
    assert response["Content-Type"].startswith("text/csv")
    assert lines[0].startswith("id,date,environment,service,version,kind,status,requested_by")
    assert any("'=HYPERLINK" in line for line in lines)
    assert restore("'=HYPERLINK") == "=HYPERLINK"
    assert any(",succeeded,ci-bot,rita,omar," in line for line in lines)


def test_detail__request_checklist_events_and_audit(client, people, history):
    client.force_login(people["audrey"])

    response = client.get(reverse("rollouts:deployment", args=[history.pk]))

    page = response.content.decode()
    assert reverse("approvals:detail", args=[history.approval_request_id]) in page
    assert "Unit tests passed" in page and 'data-testid="event-succeeded"' in page
    assert "target_type=deployment" in page and f"target_id={history.pk}" in page
    assert "deployment.execute" in page and "deployment.report" in page


def test_detail__unknown__404(client, people):
    client.force_login(people["audrey"])

    assert client.get(reverse("rollouts:deployment", args=[4242])).status_code == 404


def test_dora_page__figures_definitions_and_chart_data(client, people, history):
    client.force_login(people["dev"])

    response = client.get(reverse("rollouts:dora"), {"environment": "production", "days": 7})

    page = response.content.decode()
    assert response.status_code == 200
    assert 'id="dora-figures"' in page and "<script>" not in page.replace(
        '<script type="application/json"', ""
    )
    assert "How these are counted" in page and "CHANGE_FAILURE_WINDOW_HOURS" in page
    assert response.context["figures"].counts["successes"] == 1


def test_dora_page__bad_days__400(client, people):
    client.force_login(people["dev"])

    assert client.get(reverse("rollouts:dora"), {"days": "0"}).status_code == 400


def test_dora_api__counts_behind_each_figure(clock, people, api_call, history):
    body = api_call(people["ci-bot"], "GET", "/api/v1/dora?environment=production&days=7").json()

    assert body["counts"]["successes"] == 1 and body["change_failure_rate"] == 0.0
    assert body["lead_time_hours"]["p50"] == 2.0
    assert api_call(people["ci-bot"], "GET", "/api/v1/dora?days=0").status_code == 400
    assert api_call(people["ci-bot"], "GET", "/api/v1/dora?environment=moon").status_code == 404


def test_oncall_partial__recent_production_failure__listed_with_its_link(clock, people, rf):
    from django.template.loader import render_to_string

    from rollouts.deployment_selectors import deployment_failures_recent

    deployment = gone(people)
    report(deployment, people["ci-bot"], "started", "failed", smoke={"passed": 3, "failed": 2})
    since = deployment.created_at - dt.timedelta(days=1)

    html = render_to_string(
        "rollouts/_deployment_failures.html",
        {"deployment_failures": deployment_failures_recent(env("production"), since=since)},
    )

    assert f'data-testid="deployment-failure-{deployment.pk}"' in html
    assert reverse("rollouts:deployment", args=[deployment.pk]) in html and "2 smoke" in html


def test_oncall_page__production_deployment_failed__shown_before_the_rollback_button(
    clock, people, client
):
    deployment = gone(people)
    report(deployment, people["ci-bot"], "started", "failed", smoke={"passed": 3, "failed": 2})
    client.force_login(people["omar"])

    html = client.get(reverse("rollouts:oncall", args=["production"])).content.decode()

    failure = html.index(f'data-testid="deployment-failure-{deployment.pk}"')
    assert failure < html.index('data-testid="rollback-form"')
    assert "2 smoke test(s) failed" in html
