"""The dead-man's switch and the monitor's heartbeat, on a frozen clock: a live release whose
gated metrics stop arriving is paused and on-call told; a tick that completes stamps the
heartbeat, and a stale one shows on every page and makes /healthz degraded."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from releasecontrol.models import MonitorHeartbeat
from releasecontrol.tasks import HEARTBEAT_NAME
from rollouts.models import ReleaseStatus
from rollouts.monitor import monitor_tick
from rollouts.tasks import gate_monitor_tick
from tests.rollouts.monitor_support import (
    START,
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


def until(last: int):
    return lambda elapsed: 1.0 if elapsed <= last else None


def test_dead_man__gated_metric_silent_for_dead_man_seconds__pauses_and_alerts(
    clock, release_manager, staging, admin_user
):
    notify_to(staging, admin_user)
    # no_data "pass": the gate itself lets silence through; the dead-man's switch does not.
    release = started_release(
        release_manager,
        staging,
        plan=two_stages(hold=3600),
        gates=[gate(no_data="pass")],
        dead_man_seconds=120,
    )

    run(clock, 210, release=release, value=until(100))  # last sample at 100 s
    assert fresh(release).status == ReleaseStatus.IN_PROGRESS

    [report] = run(clock, 10)  # 220 s = 100 + 120

    release = fresh(release)
    assert report.actions == [(release.pk, "pause")]
    assert release.status == ReleaseStatus.PAUSED
    assert release.paused_reason == "Dead man's switch: no samples of error_rate for 120 s"
    [event] = system_events("release.pause", release)
    assert event.actor_kind == "system"
    evidence = event.after["evidence"][0]
    assert evidence["dead_man_seconds"] == 120
    assert evidence["last_sample_at"] == {
        "error_rate": (START + dt.timedelta(seconds=100)).isoformat()
    }
    [email, webhook] = sorted(notifications("release.paused", staging), key=lambda n: n.channel)
    assert "Dead man's switch" in email.text
    assert webhook.payload["automatic"] is True


def test_dead_man__no_sample_ever__counts_from_when_the_stage_began(
    clock, release_manager, staging
):
    release = started_release(
        release_manager,
        staging,
        plan=two_stages(hold=3600),
        gates=[gate(no_data="pass")],
        dead_man_seconds=60,
    )
    run(clock, 50)
    assert fresh(release).status == ReleaseStatus.IN_PROGRESS
    run(clock, 10)
    release = fresh(release)
    assert release.status == ReleaseStatus.PAUSED
    assert "Dead man's switch" in release.paused_reason


def test_dead_man__samples_keep_arriving__never_pauses(clock, release_manager, staging):
    release = started_release(
        release_manager, staging, plan=two_stages(hold=3600), dead_man_seconds=60
    )
    run(clock, 600, release=release, value=1.0)
    assert fresh(release).status == ReleaseStatus.IN_PROGRESS


def test_dead_man__window_longer_than_the_period__samples_in_it_older_than_the_period__pauses(
    clock, release_manager, staging
):
    release = started_release(
        release_manager,
        staging,
        plan=two_stages(hold=3600),
        gates=[gate(window_seconds=300)],
        dead_man_seconds=120,
    )
    run(clock, 510, release=release, value=until(400))  # last sample at 400 s
    assert fresh(release).status == ReleaseStatus.IN_PROGRESS

    [report] = run(clock, 10)  # 520 s: the window still holds samples, none of the last 120 s

    release = fresh(release)
    assert report.actions == [(release.pk, "pause")]
    assert release.paused_reason == "Dead man's switch: no samples of error_rate for 120 s"
    [event] = system_events("release.pause", release)
    assert event.after["evidence"][0]["last_sample_at"] == {
        "error_rate": (START + dt.timedelta(seconds=400)).isoformat()
    }


def test_dead_man__window_longer_than_the_period_shows_a_recent_sample__no_lookup_of_its_own(
    clock, release_manager, staging
):
    release = started_release(
        release_manager,
        staging,
        plan=two_stages(hold=3600),
        gates=[gate(window_seconds=300)],
        dead_man_seconds=60,
    )
    run(clock, 300, release=release, value=1.0)
    with CaptureQueriesContext(connection) as queries:
        [report] = run(clock, 10, release=release, value=1.0)

    assert report.gates_evaluated == 1
    assert fresh(release).status == ReleaseStatus.IN_PROGRESS
    assert not [q for q in queries.captured_queries if "ORDER BY s.time DESC" in q["sql"]]


# --- The heartbeat --------------------------------------------------------------------------


def test_monitor_tick__completes__stamps_the_heartbeat(clock, db):
    assert not MonitorHeartbeat.objects.exists()

    gate_monitor_tick.apply()

    assert MonitorHeartbeat.objects.get(name=HEARTBEAT_NAME).beat_at == START


def test_heartbeat__stale__healthz_degraded_and_every_page_says_so(
    clock, client, release_manager, settings
):
    monitor_tick()
    client.force_login(release_manager)
    assert client.get("/healthz").json()["gate_monitor"]["status"] == "ok"
    assert b'data-testid="monitor-down"' not in client.get("/").content

    clock.shift(dt.timedelta(seconds=settings.MONITOR_HEARTBEAT_STALE_AFTER + 1))

    health = client.get("/healthz").json()
    assert (health["status"], health["gate_monitor"]["status"]) == ("degraded", "down")
    assert b'data-testid="monitor-down"' in client.get("/").content

    monitor_tick()  # the next tick brings it back
    assert client.get("/healthz").json()["gate_monitor"]["status"] == "ok"
