"""The deployment state machine as a table: every stored status x every event a pipeline
may send (and cancel) x actor kind x environment, through the real services.

The expected outcomes are written out by hand below, not derived from the code's own table.
"""

import datetime as dt
import itertools

import pytest
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from releasecontrol.errors import Conflict
from releasecontrol.notifications.models import Notification
from rollouts.deployment_close import deployment_cancel
from rollouts.deployments import deployment_report
from rollouts.models import Deployment
from tests.rollouts.factories import DeploymentFactory

from .deploying import env

pytestmark = pytest.mark.django_db

STATUSES = [
    "awaiting_approval",
    "go",
    "in_progress",
    "succeeded",
    "failed",
    "rolled_back",
    "rejected",
    "expired",
    "cancelled",
]
EVENTS = ["started", "succeeded", "failed", "rolled_back", "cancel"]
NOT_GO, EXPIRED, NO = "409 not_go", "409 expired", "409 invalid_transition"

# status -> event -> the new status, or the refusal (for an actor who may report).
EXPECTED = {
    "awaiting_approval": {
        "started": NOT_GO,
        "succeeded": NOT_GO,
        "failed": NOT_GO,
        "rolled_back": NO,
        "cancel": "cancelled",
    },
    "go": {
        "started": "in_progress",
        "succeeded": NO,
        "failed": NO,
        "rolled_back": NO,
        "cancel": "cancelled",
    },
    "in_progress": {
        "started": NO,
        "succeeded": "succeeded",
        "failed": "failed",
        "rolled_back": NO,
        "cancel": NO,
    },
    "succeeded": {
        "started": NO,
        "succeeded": NO,
        "failed": NO,
        "rolled_back": "rolled_back",
        "cancel": NO,
    },
    "failed": {
        "started": NO,
        "succeeded": NO,
        "failed": NO,
        "rolled_back": "rolled_back",
        "cancel": NO,
    },
    "rolled_back": dict.fromkeys(EVENTS, NO),
    "rejected": dict.fromkeys(EVENTS, NO),
    "expired": {**dict.fromkeys(EVENTS, NO), "started": EXPIRED},
    "cancelled": dict.fromkeys(EVENTS, NO),
}
# Actor kinds: the pipeline (an agent), a person who may report (a developer), an account
# that may not (an auditor: refused whatever the status), and the system actor (which may
# only reduce exposure: it cancels, it never reports).
ACTORS = {"agent": "ci-bot", "human": "dev", "auditor": "audrey", "system": "system"}
ENVIRONMENTS = ["staging", "production"]


def _row(status: str, environment, requester) -> Deployment:
    now = timezone.now()
    times = {
        "go": {"go_at": now, "go_expires_at": now + dt.timedelta(hours=1)},
        "expired": {"go_at": now, "go_expires_at": now - dt.timedelta(seconds=1)},
        "in_progress": {"started_at": now},
        "succeeded": {"finished_at": now, "succeeded_at": now},
        "failed": {"finished_at": now},
        "rolled_back": {"finished_at": now, "rolled_back_at": now},
    }.get(status, {})
    # An expired go is stored as go: its expiry is read from the clock.
    stored = "go" if status == "expired" else status
    return DeploymentFactory(
        environment=environment, status=stored, requested_by=requester, **times
    )


def _act(actor, deployment: Deployment, event: str) -> str:
    try:
        with transaction.atomic():
            if event == "cancel":
                done = deployment_cancel(actor=actor, deployment=deployment, reason="table")
            else:
                done = deployment_report(
                    actor=actor,
                    deployment=deployment,
                    event=event,
                    smoke_tests={"passed": 3, "failed": 0},
                )
            outcome = done.status
            raise _Undo(outcome)
    except _Undo as undo:
        return undo.outcome
    except PermissionDenied:
        return "403"
    except Conflict as conflict:
        return f"409 {conflict.code}"


class _Undo(Exception):
    """Rolls each case back, so every case starts from the same rows."""

    def __init__(self, outcome: str) -> None:
        self.outcome = outcome


def test_deployment_state_machine__every_status_event_actor_environment__as_the_table(
    clock, people
):
    results, expected = {}, {}
    for status, event, kind, slug in itertools.product(STATUSES, EVENTS, ACTORS, ENVIRONMENTS):
        actor = people[ACTORS[kind]]
        deployment = _row(status, env(slug), actor)
        results[(status, event, kind, slug)] = _act(actor, deployment, event)
        # The system actor may only reduce exposure: it may cancel, never report.
        allowed = kind in ("agent", "human") or (kind == "system" and event == "cancel")
        expected[(status, event, kind, slug)] = EXPECTED[status][event] if allowed else "403"

    wrong = {
        case: (results[case], expected[case]) for case in results if results[case] != expected[case]
    }
    assert not wrong, wrong
    assert len(results) == 9 * 5 * 4 * 2


@pytest.mark.parametrize("slug,notified", [("staging", False), ("production", True)])
def test_report_failed__environment__only_production_notifies(clock, people, slug, notified):
    environment = env(slug)
    environment.notification_emails = "oncall@example.com"
    environment.save()
    deployment = _row("in_progress", environment, people["ci-bot"])

    deployment_report(actor=people["ci-bot"], deployment=deployment, event="failed")

    assert Notification.objects.filter(event="deployment.failed").exists() is notified
