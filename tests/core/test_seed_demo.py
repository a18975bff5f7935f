"""seed_demo: the run command's demo data shows what the product does, and running it again
adds nothing."""

import io

import pytest
from django.core.management import call_command

from approvals.models import ApprovalRequest
from flags.models import Flag
from releasecontrol.audit import audit_verify
from releasecontrol.models import AuditEvent, User
from rollouts.models import GateEvaluation, MetricSample, Release, ReleaseEvent

pytestmark = pytest.mark.django_db


def seed() -> str:
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def _counts() -> tuple[int, ...]:
    return (
        User.objects.count(),
        Flag.objects.count(),
        ApprovalRequest.objects.count(),
        Release.objects.count(),
        MetricSample.objects.count(),
        GateEvaluation.objects.count(),
        ReleaseEvent.objects.count(),
    )


def test_seed_demo__twice__same_accounts_flags_and_one_pending_request():
    first = seed()
    counts = _counts()
    events = AuditEvent.objects.count()

    second = seed()

    assert _counts() == counts
    assert "ci-bot" in first and "ci-bot" in second
    assert AuditEvent.objects.count() == events, "a second run records nothing"
    assert audit_verify().ok


def test_seed_demo__approval_request__pending_agents_production_change_partly_checked():
    seed()

    request = ApprovalRequest.objects.select_related("requested_by", "environment").get(
        action="flag.state.set"
    )
    assert (request.status, request.environment.slug, request.action) == (
        "pending",
        "production",
        "flag.state.set",
    )
    assert request.requested_by.username == "ci-bot" and request.requested_by.is_agent
    assert request.parameters["flag"] == "new-checkout"
    checked = request.checklist.filter(checked=True).count()
    assert 0 < checked < request.checklist.count(), "the inbox shows a checklist in progress"


def test_seed_demo__release__live_on_canary_in_staging_with_two_hours_of_history(client):
    seed()

    release = Release.objects.select_related("environment").get()
    assert (release.environment.slug, release.status) == ("staging", "in_progress")
    assert release.stages.get(index=release.current_stage_index).name == "canary"
    assert release.gates.count() == 2
    samples = MetricSample.objects.filter(release=release)
    span = samples.latest("time").time - samples.earliest("time").time
    assert samples.count() > 500 and span.total_seconds() > 1.9 * 3600
    assert GateEvaluation.objects.filter(release=release).count() > 100


def test_seed_demo__release_page__answers_with_a_chart_of_its_samples(client):
    import json

    seed()
    release = Release.objects.get()
    client.force_login(User.objects.get(username="rita"))

    response = client.get(f"/releases/{release.pk}/")

    assert response.status_code == 200
    html = response.content.decode()
    start = html.index('<script id="release-figures" type="application/json">')
    figures = json.loads(html[html.index(">", start) + 1 : html.index("</script>", start)])
    errors = next(f for f in figures.values() if f.get("metric") == "error_rate")
    samples = next(t for t in errors["data"] if t["name"] == "canary samples")
    assert len(samples["y"]) > 100
    assert 'data-testid="chart-metric-0"' in html


def test_seed_demo__deployments__weeks_of_history_a_failure_a_rollback_one_waiting():
    from rollouts.dora import dora_figures
    from rollouts.models import Deployment

    seed()

    production = Deployment.objects.filter(environment__slug="production")
    statuses = set(production.values_list("status", flat=True))
    assert {"succeeded", "failed", "rolled_back", "awaiting_approval"} <= statuses
    assert production.filter(kind="emergency").exists()
    waiting = production.get(status="awaiting_approval")
    request = ApprovalRequest.objects.get(pk=waiting.approval_request_id)
    assert (request.action, request.requested_by.username) == ("deployment.execute", "ci-bot")
    figures = dora_figures(environment=waiting.environment, days=30)
    assert figures.counts["successes"] >= 8 and len(figures.weeks) >= 4
    assert figures.change_failure_rate and figures.recovery_time_hours["p50"]
