"""seed_demo: the run command's demo data shows what the product does, and running it again
adds nothing."""

import io

import pytest
from django.core.management import call_command

from approvals.models import ApprovalRequest
from flags.models import Flag
from releasecontrol.audit import audit_verify
from releasecontrol.models import AuditEvent, User

pytestmark = pytest.mark.django_db


def seed() -> str:
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def test_seed_demo__twice__same_accounts_flags_and_one_pending_request():
    first = seed()
    counts = (User.objects.count(), Flag.objects.count(), ApprovalRequest.objects.count())
    events = AuditEvent.objects.count()

    second = seed()

    assert (User.objects.count(), Flag.objects.count(), ApprovalRequest.objects.count()) == counts
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
