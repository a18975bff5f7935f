"""The gate monitor advancing plans on a frozen clock: a five-stage plan in staging to
completed, blackout windows holding advancement but never a rollback, an engaged kill switch
pausing instead of increasing, and two ticks queued at once counting once."""

import datetime as dt

import pytest

from approvals.blackouts import blackout_window_create
from flags.kill_switches import kill_switch_engage
from flags.models import Flag, Mode
from rollouts.models import Gate, ReleaseEventKind, ReleaseStatus
from rollouts.monitor import monitor_tick
from tests.rollouts.monitor_support import (
    START,
    evaluations,
    feed,
    flag_state,
    fresh,
    gate,
    notifications,
    notify_to,
    run,
    started_release,
    system_events,
    two_stages,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def clock(time_machine):
    time_machine.move_to(START, tick=False)
    return time_machine


def test_monitor_tick__five_stage_plan_in_staging__advances_stage_by_stage_to_completed(
    clock, release_manager, staging, admin_user
):
    notify_to(staging, admin_user)
    release = started_release(
        release_manager, staging, plan="five-stage", gates=[gate(window_seconds=300)]
    )
    assert flag_state("new-checkout", staging).mode == Mode.OFF  # infrastructure

    run(
        clock,
        8 * 3600,
        release=release,
        value=1.0,
        step=30,
        until=lambda: fresh(release).status == ReleaseStatus.COMPLETED,
    )

    release = fresh(release)
    assert release.status == ReleaseStatus.COMPLETED
    advanced = release.events.filter(kind=ReleaseEventKind.ADVANCED).order_by("at")
    # Each stage: its hold, and one full window of passing gates after it began.
    assert [(e.at - START).seconds for e in advanced] == [300, 900, 2700, 6300]
    completed = release.events.get(kind=ReleaseEventKind.COMPLETED)
    assert (completed.at - START).seconds == 6600
    assert flag_state("new-checkout", staging).mode == Mode.FULL
    assert len(system_events("release.advance", release)) == 5  # four stages and the end
    assert all(e.actor_kind == "system" for e in system_events("release.advance", release))
    assert len(notifications("release.advanced", staging)) == 4 * 2  # email and webhook
    assert len(notifications("release.completed", staging)) == 2

    evaluated_after = len(evaluations(release))
    run(clock, 600, release=release, value=1.0, step=30)
    assert len(evaluations(release)) == evaluated_after  # completed: no longer watched


def test_monitor_tick__blackout_open__holds_advancement_but_not_the_rollback(
    clock, release_manager, staging
):
    release = started_release(release_manager, staging, plan=two_stages(hold=0))
    blackout_window_create(
        actor=release_manager,
        environment=staging,
        reason="quarter close",
        starts_at=START,
        ends_at=START + dt.timedelta(hours=2),
    )

    run(clock, 600, release=release, value=1.0)
    release = fresh(release)
    assert (release.status, release.current_stage_index) == (ReleaseStatus.IN_PROGRESS, 0)
    assert evaluations(release)[-1].outcome == "success"
    assert system_events("release.advance", release) == []

    run(clock, 30, release=release, value=500.0)  # the average breaks 5 on the first tick

    release = fresh(release)
    assert release.status == ReleaseStatus.ROLLED_BACK
    assert flag_state("new-checkout", staging).mode == Mode.OFF
    assert len(system_events("release.rollback", release)) == 1


def test_monitor_tick__blackout_over__advances(clock, release_manager, staging):
    release = started_release(release_manager, staging, plan=two_stages(hold=0))
    blackout_window_create(
        actor=release_manager,
        environment=staging,
        reason="deploy freeze",
        starts_at=START,
        ends_at=START + dt.timedelta(seconds=300),
    )
    run(clock, 290, release=release, value=1.0)
    assert fresh(release).current_stage_index == 0
    run(clock, 20, release=release, value=1.0)
    assert fresh(release).current_stage_index == 1


def test_monitor_tick__kill_switch_engaged_on_the_flag__pauses_instead_of_increasing(
    clock, release_manager, oncall, staging
):
    plan = [
        {"name": "dark", "mode": "off", "percentage": 0, "hold_seconds": 0},
        {"name": "canary", "mode": "percentage", "percentage": 5, "hold_seconds": 600},
    ]
    release = started_release(release_manager, staging, plan=plan)
    kill_switch_engage(
        actor=oncall,
        environment=staging,
        scope="flag",
        flag=Flag.objects.get(key="new-checkout"),
        reason="payments incident",
    )

    run(clock, 60, release=release, value=1.0)

    release = fresh(release)
    assert (release.status, release.current_stage_index) == (ReleaseStatus.PAUSED, 0)
    assert "Could not advance" in release.paused_reason
    assert flag_state("new-checkout", staging).mode == Mode.OFF
    [pause] = system_events("release.pause", release)
    assert pause.actor_kind == "system"
    run(clock, 120, release=release, value=1.0)  # paused: never retried upward
    assert flag_state("new-checkout", staging).mode == Mode.OFF


def test_monitor_tick__two_ticks_back_to_back__count_once_toward_the_consecutive_rule(
    clock, release_manager, staging
):
    release = started_release(
        release_manager, staging, plan=two_stages(hold=3600), gates=[gate(failures_to_act=2)]
    )
    run(clock, 50, release=release, value=1.0)
    clock.shift(dt.timedelta(seconds=10))
    feed(release, 900.0)

    first, second = monitor_tick(), monitor_tick()  # a backlog: two queued ticks at once

    assert (first.gates_evaluated, second.gates_evaluated) == (1, 0)
    assert fresh(release).status == ReleaseStatus.IN_PROGRESS
    assert Gate.objects.get(release=release).consecutive_failures == 1
    assert system_events("release.rollback", release) == []

    [report] = run(clock, 10, release=release, value=1.0)  # the next real tick: the second
    assert report.actions == [(release.pk, "rollback")]
    assert len(system_events("release.rollback", release)) == 1


def test_monitor_tick__gates_of_stages__each_evaluated_only_while_its_stage_is_current(
    clock, release_manager, staging
):
    release = started_release(
        release_manager,
        staging,
        plan=two_stages(hold=60),
        gates=[gate(name="canary-errors", stage="canary"), gate(name="full-errors", stage="full")],
    )

    run(clock, 60, release=release, value=1.0)
    assert fresh(release).current_stage_index == 1  # canary held a minute and passed
    assert [e.gate.name for e in evaluations(release)] == ["canary-errors"]
    assert Gate.objects.get(release=release, name="full-errors").last_evaluated_at is None

    run(clock, 60, release=release, value=1.0)
    assert fresh(release).status == ReleaseStatus.COMPLETED
    kept = [((e.evaluated_at - START).seconds, e.gate.name) for e in evaluations(release)]
    assert kept == [(60, "canary-errors"), (120, "full-errors")]
