"""The gate monitor's tick on a frozen clock: when gates are first evaluated, how holds run and
restart, the Nth-consecutive-failure rule end to end, the error limit, the no-data policy,
which evaluations are kept, and advisory alerts. Releases are made and started through the
real services; samples are rows as the ingestion service would write them."""

import datetime as dt
import gc
import sys

import pytest
from django.db import connection

from flags.models import Mode
from rollouts import monitor
from rollouts.models import Gate, ReleaseEventKind, ReleaseStatus
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
    the_gate,
    two_stages,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def clock(time_machine):
    time_machine.move_to(START, tick=False)
    return time_machine


@pytest.fixture
def told(staging, admin_user):
    notify_to(staging, admin_user)
    return staging


def bad_at(*moments: int, bad: float = 9.0, good: float = 1.0):
    return lambda elapsed: bad if elapsed in moments else good


# --- Windows ---------------------------------------------------------------------------------


def test_monitor_tick__before_one_full_window_after_the_stage_began__evaluates_nothing(
    clock, release_manager, staging
):
    release = started_release(release_manager, staging, gates=[gate(window_seconds=60)])

    run(clock, 50, release=release, value=1.0)
    assert evaluations(release) == []
    assert the_gate(release).last_evaluated_at is None

    run(clock, 10, release=release, value=1.0)
    [first] = evaluations(release)
    assert first.evaluated_at == START + dt.timedelta(seconds=60)
    assert (first.outcome, first.value, first.samples) == ("success", 1.0, 6)
    assert (first.window_start, first.window_end) == (
        START,
        START + dt.timedelta(seconds=60),
    )
    assert (first.threshold, first.source, first.stage_index) == (5.0, "push", 0)


def test_monitor_tick__steady_outcome__kept_once_a_minute_and_on_every_change(
    clock, release_manager, staging
):
    release = started_release(
        release_manager, staging, plan=two_stages(hold=3600), gates=[gate(failures_to_act=50)]
    )
    run(clock, 300, release=release, value=1.0)
    kept = evaluations(release)
    assert [e.evaluated_at - START for e in kept] == [
        dt.timedelta(seconds=s) for s in (60, 120, 180, 240, 300)
    ]
    assert the_gate(release).last_evaluated_at == START + dt.timedelta(seconds=300)

    run(clock, 10, release=release, value=50.0)  # avg over the window jumps above 5
    changed = evaluations(release)[-1]
    assert (changed.evaluated_at - START, changed.outcome) == (dt.timedelta(seconds=310), "failure")
    assert changed.detail  # a sentence a person reads


# --- Holds -----------------------------------------------------------------------------------


def test_monitor_tick__hold_not_yet_passed__stage_stays_then_advances_when_it_has(
    clock, release_manager, staging
):
    release = started_release(release_manager, staging, plan=two_stages(hold=600))

    run(clock, 590, release=release, value=1.0)
    assert fresh(release).current_stage_index == 0
    assert flag_state("new-checkout", staging).percentage == 5

    run(clock, 10, release=release, value=1.0)
    release = fresh(release)
    assert (release.status, release.current_stage_index) == (ReleaseStatus.IN_PROGRESS, 1)
    assert release.stage_entered_at == START + dt.timedelta(seconds=600)
    assert flag_state("new-checkout", staging).mode == Mode.FULL
    [advance] = system_events("release.advance", release)
    assert advance.actor_kind == "system"
    assert advance.after["evidence"][0]["outcome"] == "success"


def test_monitor_tick__failure_short_of_the_action__restarts_the_hold(
    clock, release_manager, staging
):
    # max over 30 s: one bad sample at 300 s fails the evaluations at 300, 310 and 320.
    release = started_release(
        release_manager,
        staging,
        plan=two_stages(hold=600),
        gates=[gate(aggregate="max", window_seconds=30, min_samples=1, failures_to_act=5)],
    )

    run(clock, 330, release=release, value=bad_at(300))
    release = fresh(release)
    assert release.hold_started_at == START + dt.timedelta(seconds=320)
    assert the_gate(release).consecutive_failures == 0  # the success at 330 reset it

    run(clock, 580, release=release, value=1.0)  # 910 s: the first hold would be long over
    assert fresh(release).current_stage_index == 0
    run(clock, 10, release=release, value=1.0)  # 920 s = 320 + 600
    assert fresh(release).current_stage_index == 1


# --- The Nth-consecutive-failure rule ------------------------------------------------------


def test_monitor_tick__third_consecutive_failure__rolls_back_as_the_system_with_evidence(
    clock, release_manager, told
):
    release = started_release(
        release_manager,
        told,
        plan=two_stages(hold=3600),
        gates=[gate(aggregate="max", window_seconds=30, min_samples=1, failures_to_act=3)],
    )
    run(clock, 310, release=release, value=bad_at(300))
    assert fresh(release).status == ReleaseStatus.IN_PROGRESS
    assert the_gate(release).consecutive_failures == 2

    [report] = run(clock, 10, release=release, value=1.0)

    assert report.actions == [(release.pk, "rollback")]
    release = fresh(release)
    assert release.status == ReleaseStatus.ROLLED_BACK
    assert flag_state("new-checkout", told).mode == Mode.OFF
    [event] = system_events("release.rollback", release)
    assert (event.actor_kind, event.outcome) == ("system", "ok")
    assert "failed 3 consecutive" in event.reason
    [evidence] = event.after["evidence"]
    assert (evidence["gate"], evidence["outcome"], evidence["value"]) == ("errors", "failure", 9.0)
    assert evidence["consecutive_failures"] == 3
    timeline = release.events.get(kind=ReleaseEventKind.ROLLED_BACK)
    assert timeline.automatic and timeline.actor.is_system
    acted = evaluations(release)[-1]
    assert (acted.outcome, acted.action) == ("failure", "rollback")
    sent = notifications("release.rolled_back", told)
    assert {n.channel for n in sent} == {"email", "webhook"}
    assert sent[0].payload["evidence"][0]["value"] == 9.0
    assert "rolled back" in sent[0].subject


def test_monitor_tick__a_success_between_failures__resets_the_count_and_never_acts(
    clock, release_manager, staging
):
    release = started_release(
        release_manager,
        staging,
        plan=two_stages(hold=3600),
        gates=[gate(aggregate="max", window_seconds=30, min_samples=1, failures_to_act=4)],
    )
    # Failures at 300-320 and 340-360, a success at 330 between them: never four in a row.
    run(clock, 400, release=release, value=bad_at(300, 340))

    release = fresh(release)
    assert release.status == ReleaseStatus.IN_PROGRESS
    tail = [(e.outcome, (e.evaluated_at - START).seconds) for e in evaluations(release)][-4:]
    assert tail == [("failure", 300), ("success", 330), ("failure", 340), ("success", 370)]
    assert system_events("release.rollback", release) == []
    assert the_gate(release).consecutive_failures == 0


# --- Errors and no data ---------------------------------------------------------------------


def test_monitor_tick__error_limit_reached__pauses_and_never_advances(
    clock, release_manager, told, settings
):
    settings.PROMETHEUS_URL = ""  # every Prometheus gate answers `error`
    settings.GATE_ERROR_LIMIT = 4
    release = started_release(
        release_manager,
        told,
        plan=two_stages(hold=0),
        gates=[gate(source={"prometheus": "sum(rate(errors_total[1m]))"})],
    )

    run(clock, 80)  # errors at 60, 70, 80
    release = fresh(release)
    assert (release.status, release.current_stage_index) == (ReleaseStatus.IN_PROGRESS, 0)
    assert the_gate(release).consecutive_errors == 3

    [report] = run(clock, 10)
    release = fresh(release)
    assert report.actions == [(release.pk, "pause")]
    assert (release.status, release.current_stage_index) == (ReleaseStatus.PAUSED, 0)
    assert "errored 4 times in a row" in release.paused_reason
    [event] = system_events("release.pause", release)
    assert event.after["evidence"][0]["outcome"] == "error"
    assert notifications("release.paused", told)
    assert system_events("release.advance", release) == []

    run(clock, 600)  # paused: evaluated, never advanced
    assert fresh(release).current_stage_index == 0


def test_monitor_tick__no_data_with_the_pause_policy__pauses(clock, release_manager, told):
    release = started_release(release_manager, told, gates=[gate(no_data="pause")])

    [*_, report] = run(clock, 60)

    release = fresh(release)
    assert report.actions == [(release.pk, "pause")]
    assert release.status == ReleaseStatus.PAUSED
    assert "no data" in release.paused_reason
    [event] = system_events("release.pause", release)
    assert event.after["evidence"][0]["outcome"] == "no_data"
    assert notifications("release.paused", told)


def test_monitor_tick__paused_release__evaluated_and_kept_but_not_advanced(
    clock, release_manager, staging
):
    from rollouts.services import release_pause

    release = started_release(release_manager, staging, plan=two_stages(hold=0))
    release_pause(actor=release_manager, release=release, reason="looking at it")

    run(clock, 120, release=release, value=1.0)

    assert [e.outcome for e in evaluations(release)] == ["success", "success"]
    release = fresh(release)
    assert (release.status, release.current_stage_index) == (ReleaseStatus.PAUSED, 0)


# --- Advisory gates -------------------------------------------------------------------------


def test_monitor_tick__advisory_gate_failing__alerts_once_and_never_acts(
    clock, release_manager, told
):
    release = started_release(
        release_manager,
        told,
        plan=two_stages(hold=3600),
        gates=[gate(), gate(name="latency", metric="latency_ms", advisory=True)],
    )
    run(clock, 120, release=release, value=1.0)  # error_rate fine; latency_ms never arrives
    # latency_ms has no data: an advisory gate never pauses for it either.
    assert fresh(release).status == ReleaseStatus.IN_PROGRESS

    def both(elapsed):
        feed(release, 900.0, metric="latency_ms")
        return 1.0

    run(clock, 60, release=release, value=both)

    assert fresh(release).status == ReleaseStatus.IN_PROGRESS
    alerts = notifications("release.gate_alert", told)
    assert len({n.payload["reason"] for n in alerts}) == 1  # one breach, one alert
    assert "latency" in alerts[0].payload["reason"]
    assert the_gate(release, "latency").evaluations.filter(action="advisory alert").count() == 1
    assert system_events("release.pause", release) == []


# --- The tick's own footprint ------------------------------------------------------------------


def test_monitor_tick__collector_would_run_at_every_allocation__none_while_a_batch_runs(
    clock, release_manager, staging
):
    release = started_release(release_manager, staging)
    run(clock, 60, release=release, value=1.0)
    clock.shift(dt.timedelta(seconds=10))
    feed(release, 1.0)
    inside: list[int] = []  # collections started with a batch's evaluation on the stack

    def collecting(phase: str, info: dict) -> None:
        frame = sys._getframe(1)
        while frame is not None and phase == "start":
            if frame.f_code is monitor._batch_evaluate.__code__:
                inside.append(info["generation"])
                return
            frame = frame.f_back

    threshold = gc.get_threshold()
    gc.set_threshold(1)  # without the pause, a collection at nearly every allocation
    gc.callbacks.append(collecting)
    try:
        report = monitor.monitor_tick()
    finally:
        gc.callbacks.remove(collecting)
        gc.set_threshold(*threshold)

    assert report.gates_evaluated == 1
    assert inside == []
    assert gc.isenabled()  # resumed once the tick is over


def test_gate_table__on_postgresql__pages_keep_room_for_in_place_updates():
    # Every tick rewrites every gate's state: with room on the page, PostgreSQL updates the
    # row without writing the table's indexes (rollouts/migrations/0005_gate_table_fillfactor).
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = %s", [Gate._meta.db_table])
        [options] = cursor.fetchone()
    assert "fillfactor=50" in options
