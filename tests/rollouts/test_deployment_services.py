"""Deployments through their services: registering, the go through an approved request,
outcomes, cancelling, and closing deployments whose go or request ended."""

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from approvals.blackouts import blackout_window_create
from approvals.models import PostReview
from releasecontrol.errors import Conflict
from releasecontrol.models import AuditEvent
from releasecontrol.notifications.models import Notification
from rollouts.deployment_close import deployment_cancel, deployments_close
from rollouts.deployment_selectors import current, deployment_get
from rollouts.models import Deployment, DeploymentEvent

from .deploying import (
    approve,
    complete_checklist,
    env,
    execute,
    fresh,
    gone,
    register,
    report,
    request_of,
    staged,
)

pytestmark = pytest.mark.django_db


def last_event(action):
    return AuditEvent.objects.filter(action=action).order_by("-id").first()


def test_register__staging__go_at_once_audited(clock, people):
    deployment = register(people["ci-bot"], "staging")

    assert deployment.status == "go" and deployment.approval_request_id is None
    assert deployment.go_expires_at == deployment.go_at + dt.timedelta(hours=72)
    event = last_event("deployment.register")
    assert (event.actor_name, event.outcome, event.after["status"]) == ("ci-bot", "ok", "go")
    assert event.after["service"] == "checkout-api" and event.after["version"] == "2.4.0"


def test_register__production_never_in_staging__409_nothing_written(clock, people):
    with pytest.raises(Conflict, match="never succeeded in staging") as refused:
        register(people["ci-bot"], "production", version="9.9.9")

    assert refused.value.code == "not_in_staging"
    assert not Deployment.objects.exists()


def test_register__production_after_staging__awaits_deployment_execute_request(clock, people):
    staged(people["ci-bot"])

    deployment = register(people["ci-bot"], "production", notes="Payment form")

    request = request_of(deployment)
    assert deployment.status == "awaiting_approval"
    assert (request.action, request.parameters) == (
        "deployment.execute",
        {"deployment": deployment.pk},
    )
    assert request.checklist_template.slug == "deployment" and request.checklist.count() > 10
    item = request.preview["items"][0]
    assert item["before"]["running"] is None and item["after"]["running"] == "2.4.0"
    assert item["after"]["artifact"] == deployment.artifact
    assert request.preview["reduces_exposure"] is False


def test_preview__names_what_runs_now_and_the_last_outcome(clock, people):
    bot = people["ci-bot"]
    running = gone(people, version="2.3.0")
    report(running, bot, "started", "succeeded")
    broken = gone(people, version="2.3.1")
    report(broken, bot, "started", "failed")
    staged(bot, version="2.4.0")

    deployment = register(bot, "production", version="2.4.0")

    before = request_of(deployment).preview["items"][0]["before"]
    assert before["running"] == "2.3.0" and before["artifact"] == running.artifact
    assert before["last_deployment"] == f"2.3.1 failed (deployment #{broken.pk})"


def test_go__two_gos_and_oncall_executes__go_with_request_expiry(clock, people):
    deployment = gone(people)

    request = request_of(deployment)
    assert deployment.status == "go" and deployment.executed_by == people["omar"]
    assert deployment.go_expires_at == request.expires_at
    assert deployment.approved_by == ["rita"]
    assert request.status == "executed"
    event = last_event("deployment.execute")
    assert event.actor_name == "omar" and event.after["approval"]["approvers"] == ["rita"]


def test_go__agent_executes__refused_and_recorded(clock, people):
    staged(people["ci-bot"])
    deployment = register(people["ci-bot"], "production")
    complete_checklist(deployment, people["ci-bot"])
    approve(deployment, people["rita"])

    with pytest.raises(PermissionDenied):
        execute(deployment, people["rogue-bot"])

    assert fresh(deployment).status == "awaiting_approval"
    denied = AuditEvent.objects.filter(outcome="denied", actor_name="rogue-bot")
    assert denied.exists()


def test_go__blackout_open__held_then_emergency_goes_through(clock, people):
    staged(people["ci-bot"])
    deployment = register(people["ci-bot"], "production")
    complete_checklist(deployment, people["ci-bot"])
    approve(deployment, people["rita"])
    blackout_window_create(
        actor=people["rita"],
        environment=env("production"),
        starts_at=timezone.now() - dt.timedelta(hours=1),
        ends_at=timezone.now() + dt.timedelta(hours=1),
        reason="Quarter close",
    )

    with pytest.raises(Conflict, match="blackout"):
        execute(deployment, people["omar"])
    assert fresh(deployment).status == "awaiting_approval"

    emergency = register(people["ci-bot"], "production", version="2.4.1", kind="emergency")
    complete_checklist(emergency, people["ci-bot"])
    approve(emergency, people["rita"], people["rhea"])
    emergency = execute(emergency, people["omar"])

    assert emergency.status == "go" and emergency.emergency_confirmed_by == people["rita"]
    assert PostReview.objects.filter(request_id=emergency.approval_request_id).exists()


def test_emergency__skips_staging_needs_one_more_go(clock, people):
    deployment = register(people["ci-bot"], "production", version="3.0.1", kind="emergency")
    complete_checklist(deployment, people["ci-bot"])

    assert approve(deployment, people["rita"]).status == "pending"
    assert approve(deployment, people["rhea"]).status == "approved"


def test_report__production_failure__notifies_with_oncall_link(clock, people):
    production = env("production")
    production.notification_emails = "oncall@example.com"
    production.save()
    deployment = gone(people)

    report(deployment, people["ci-bot"], "started")
    failed = report(deployment, people["ci-bot"], "failed", smoke={"passed": 10, "failed": 2})

    assert (failed.status, failed.smoke_passed, failed.smoke_failed) == ("failed", 10, 2)
    note = Notification.objects.get(event="deployment.failed")
    assert note.link.endswith("/oncall/production/") and "2 failed" in note.text
    assert not env("production").kill_switch_engaged, "a failure engages nothing by itself"


def test_report__go_expired__started_refused_and_read_as_expired(clock, people):
    deployment = register(people["ci-bot"], "staging")
    clock.move_to(deployment.go_expires_at + dt.timedelta(seconds=1), tick=False)

    with pytest.raises(Conflict, match="expired") as refused:
        report(deployment, people["ci-bot"], "started")

    assert refused.value.code == "expired"
    assert current(deployment_get(deployment.pk)) == "expired"
    assert deployments_close() == [deployment.pk]
    assert fresh(deployment).status == "expired"
    assert last_event("deployment.close").actor_name == "system"


def test_close__rejected_request__deployment_rejected_on_read_and_stored(clock, people):
    from approvals.decisions import approval_decide

    staged(people["ci-bot"])
    deployment = register(people["ci-bot"], "production")
    request = request_of(deployment)
    approval_decide(
        actor=people["rita"],
        request=request,
        decision="no_go",
        preview_hash=request.preview_hash,
        comment="Not this week",
    )

    assert current(deployment_get(deployment.pk)) == "rejected"
    assert deployments_close() == [deployment.pk]
    assert fresh(deployment).status == "rejected"


def test_cancel__awaiting__cancels_its_request_too(clock, people):
    staged(people["ci-bot"])
    deployment = register(people["ci-bot"], "production")

    cancelled = deployment_cancel(
        actor=people["ci-bot"], deployment=fresh(deployment), reason="Superseded"
    )

    assert cancelled.status == "cancelled" and request_of(deployment).status == "cancelled"
    assert DeploymentEvent.objects.filter(deployment=deployment, event="cancelled").exists()


def test_cancel__after_start__409(clock, people):
    deployment = report(register(people["ci-bot"], "staging"), people["ci-bot"], "started")

    with pytest.raises(Conflict, match="in_progress"):
        deployment_cancel(actor=people["ci-bot"], deployment=deployment)


def test_register__hostile_fields__each_named_nothing_written(clock, people):
    with pytest.raises(ValidationError) as invalid:
        register(
            people["ci-bot"],
            service="../../etc",
            version="",
            commit="zzz",
            artifact="latest",
            kind="yolo",
        )

    assert set(invalid.value.message_dict) == {"service", "version", "commit", "artifact", "kind"}
    assert not Deployment.objects.exists()
    assert not AuditEvent.objects.filter(action="deployment.register").exists()


def test_import__past_history__rows_events_one_audit_event_agents_refused(clock, people):
    from rollouts.deployment_import import deployment_history_import

    day = timezone.now() - dt.timedelta(days=3)
    record = {
        "environment": "production",
        "service": "search",
        "version": "5.0.0",
        "commit": "abcdef1",
        "commit_time": day - dt.timedelta(hours=1),
        "artifact": "sha256:" + "cd" * 32,
        "status": "succeeded",
        "created_at": day,
        "started_at": day,
        "finished_at": day + dt.timedelta(minutes=5),
        "succeeded_at": day + dt.timedelta(minutes=5),
        "requested_by": "ci-bot",
    }

    with pytest.raises(PermissionDenied):
        deployment_history_import(actor=people["ci-bot"], records=[record])
    with pytest.raises(ValidationError):
        deployment_history_import(actor=people["system"], records=[{**record, "status": "go"}])
    (made,) = deployment_history_import(actor=people["system"], records=[record])

    assert (made.status, made.succeeded_at) == ("succeeded", day + dt.timedelta(minutes=5))
    assert list(made.events.values_list("event", flat=True)) == [
        "registered",
        "started",
        "succeeded",
    ]
    assert last_event("deployment.import").after["imported"] == 1


def test_succeeded__linked_draft_release_in_staging__starts_it(clock, people, make_release):
    release = make_release(people["rita"], env("staging"))
    deployment = register(people["ci-bot"], "staging", release=release)

    report(deployment, people["ci-bot"], "started", "succeeded")

    release.refresh_from_db()
    assert release.status == "in_progress" and release.current_stage_index == 0
    note = DeploymentEvent.objects.get(deployment=deployment, event="release")
    assert note.detail == f"release {release.name} is in_progress"


def test_succeeded__linked_release_in_production__success_kept_release_waits(
    clock, people, make_release
):
    release = make_release(people["rita"], env("production"))
    deployment = gone(people)
    deployment.release = release
    deployment.save(update_fields=["release"])

    done = report(deployment, people["ci-bot"], "started", "succeeded")

    release.refresh_from_db()
    assert done.status == "succeeded", "a release that cannot start never undoes the success"
    assert release.status in ("draft", "awaiting_approval")
    note = DeploymentEvent.objects.get(deployment=deployment, event="release")
    assert note.detail.startswith(f"release {release.name}")
