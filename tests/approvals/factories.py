"""Rows for read-side tests (admin pages, URL walks, query counts), built directly like
tests/factories.py builds flag rows; behaviour is tested through the services."""

import datetime as dt

from django.utils import timezone

from approvals.models import ApprovalRequest, BlackoutWindow, ChecklistItem, Decision, PostReview
from releasecontrol.models import Environment, User


def approvals_rows(requester: User, decider: User) -> dict:
    """A pending request with a checklist item, an executed emergency with its open
    post-review and decisions, and a weekly blackout window, in production."""
    production = Environment.objects.get(slug="production")
    now = timezone.now()
    common = {
        "environment": production,
        "action": "flag.state.set",
        "parameters": {"flag": "probe", "mode": "full"},
        "preview": {"items": [], "reduces_exposure": False},
        "preview_hash": "a" * 64,
        "requested_by": requester,
        "expires_at": now + dt.timedelta(hours=72),
    }
    pending = ApprovalRequest.objects.create(title="Probe request", **common)
    ChecklistItem.objects.create(request=pending, position=1, section="Tests", text="Passed")
    executed = ApprovalRequest.objects.create(
        title="Probe emergency",
        urgency="emergency",
        status="executed",
        approved_at=now,
        executed_at=now,
        executed_by=decider,
        closed_at=now,
        **common,
    )
    Decision.objects.create(
        request=executed, revision=1, decider=decider, decision="go", preview_hash="a" * 64
    )
    review = PostReview.objects.create(request=executed)
    window = BlackoutWindow.objects.create(
        environment=production,
        kind="weekly",
        day=4,
        start_time=dt.time(15),
        end_day=0,
        end_time=dt.time(8),
        time_zone="Europe/Berlin",
        reason="Weekend",
        created_by=decider,
    )
    return {"pending": pending, "executed": executed, "post_review": review, "blackout": window}
