"""The release services: each step, its flag states, its timeline row and its audit event."""

from flags.models import FlagState
from releasecontrol.models import AuditEvent
from rollouts.models import ReleaseEvent, ReleaseFlag
from rollouts.services import (
    release_advance,
    release_halve,
    release_mark_rolled_back,
    release_pause,
    release_resume,
    release_rollback,
    release_start,
)


def _state(flag, environment):
    return FlagState.objects.get(flag=flag, environment=environment)


def _last_audit(action):
    return AuditEvent.objects.filter(action=action).order_by("-id").first()


def test_release_create__staging__draft_with_stages_gates_and_audit(
    developer, staging, make_release
):
    release = make_release(developer, staging)

    event = _last_audit("release.create")
    assert release.status == "draft"
    assert [s.name for s in release.stages.all()] == ["canary", "full"]
    assert [g.name for g in release.gates.all()] == ["errors"]
    assert event.actor == developer and event.after["flags"] == ["new-checkout"]
    assert ReleaseEvent.objects.get(release=release).kind == "created"


def test_release_start_advance__staging__flags_follow_the_stages(
    developer, staging, flag, make_release
):
    release = make_release(developer, staging)

    release_start(actor=developer, release=release, reason="go")
    canary = _state(flag, staging)
    release_advance(actor=developer, release=release, reason="looks fine")
    full = _state(flag, staging)

    assert (canary.mode, canary.percentage) == ("percentage", 5)
    assert full.mode == "full"
    assert _last_audit("release.start").actor == developer
    assert _last_audit("release.advance").after["stage"] == "full"
    assert ReleaseFlag.objects.get(release=release).live
    assert [e.kind for e in release.events.all()] == ["created", "started", "advanced"]


def test_release_advance__after_the_last_stage__completes_and_frees_the_flag(
    developer, staging, make_release
):
    release = make_release(developer, staging)
    release_start(actor=developer, release=release, reason="go")
    release_advance(actor=developer, release=release, reason="full")

    release = release_advance(actor=developer, release=release, reason="done")

    assert release.status == "completed" and release.ended_at is not None
    assert not ReleaseFlag.objects.get(release=release).live


def test_release_pause_halve_resume__staging__exposure_halves_then_returns(
    developer, staging, flag, make_release, system_user
):
    release = make_release(developer, staging)
    release_start(actor=developer, release=release, reason="go")

    release_halve(actor=system_user, release=release, reason="p95", evidence=[{"gate_id": 1}])
    halved = _state(flag, staging)
    release_resume(actor=developer, release=release, reason="fixed")
    resumed = _state(flag, staging)
    release = release_pause(actor=developer, release=release, reason="lunch")

    assert (halved.mode, halved.percentage) == ("percentage", 2)
    assert _last_audit("release.halve").after["evidence"] == [{"gate_id": 1}]
    assert _last_audit("release.halve").actor == system_user
    assert (resumed.mode, resumed.percentage) == ("percentage", 5)
    assert release.status == "paused" and release.paused_reason == "lunch"
    assert _last_audit("release.pause").actor == developer


def test_release_rollback__system_actor__flags_off_and_release_rolled_back(
    developer, staging, flag, make_release, system_user
):
    release = make_release(developer, staging)
    release_start(actor=developer, release=release, reason="go")

    release = release_rollback(
        actor=system_user, release=release, reason="error rate", evidence={"value": 7.2}
    )

    assert release.status == "rolled_back"
    assert _state(flag, staging).mode == "off"
    assert not ReleaseFlag.objects.get(release=release).live
    assert _last_audit("release.rollback").after["evidence"] == {"value": 7.2}
    assert release.events.last().automatic


def test_release_mark_rolled_back__live_release__summary_and_no_flag_write(
    developer, staging, flag, make_release, oncall
):
    release = make_release(developer, staging)
    release_start(actor=developer, release=release, reason="go")

    summary = release_mark_rolled_back(release=release, actor=oncall, reason="3 a.m.")

    release.refresh_from_db()
    assert summary == {
        "id": release.pk,
        "name": "checkout-v2",
        "status_before": "in_progress",
        "stage_index": 0,
        "percentage": 5,
    }
    assert release.status == "rolled_back"
    assert _state(flag, staging).percentage == 5  # the caller turns flags off
