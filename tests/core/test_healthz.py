"""/healthz: the database, Redis (or "not configured") and the gate monitor's heartbeat; the
dashboard says so in a banner when the monitor is down."""

import datetime as dt

from django.conf import settings
from django.test import override_settings
from django.utils import timezone

from releasecontrol.models import MonitorHeartbeat
from releasecontrol.tasks import monitor_heartbeat
from tests.factories import MonitorHeartbeatFactory


def health(client) -> dict:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")
    return response.json()


def test_healthz__database__ok(client, db):
    body = health(client)

    assert body["database"] == "ok"
    assert body["status"] == "ok"


def test_healthz__redis_reachable__ok(client, db):
    assert settings.REDIS_URL, "the suite runs against real Redis: scripts/test.sh sets REDIS_URL"
    assert health(client)["redis"] == "ok"


@override_settings(REDIS_URL="")
def test_healthz__redis_not_configured__says_so(client, db):
    assert health(client)["redis"] == "not configured"


@override_settings(REDIS_URL="redis://127.0.0.1:9/0")
def test_healthz__redis_unreachable__down(client, db):
    assert health(client)["redis"] == "down"


def test_healthz__no_heartbeat__gate_monitor_down(client, db):
    assert not MonitorHeartbeat.objects.exists()

    monitor = health(client)["gate_monitor"]

    assert monitor == {"status": "down", "last_heartbeat": None, "age_seconds": None}


def test_healthz__heartbeat_older_than_60_s__gate_monitor_down(client, db):
    MonitorHeartbeatFactory(beat_at=timezone.now() - dt.timedelta(seconds=61))

    monitor = health(client)["gate_monitor"]

    assert monitor["status"] == "down"
    assert monitor["age_seconds"] >= 61


def test_healthz__after_the_heartbeat_task__gate_monitor_ok(client, db):
    MonitorHeartbeatFactory(beat_at=timezone.now() - dt.timedelta(minutes=10))

    monitor_heartbeat()

    monitor = health(client)["gate_monitor"]
    assert monitor["status"] == "ok"
    assert monitor["age_seconds"] < 5
    assert MonitorHeartbeat.objects.count() == 1


def test_dashboard__monitor_stale__shows_the_monitor_down_banner(client, developer):
    MonitorHeartbeatFactory(beat_at=timezone.now() - dt.timedelta(seconds=90))
    client.force_login(developer)

    response = client.get("/")

    assert b'data-testid="monitor-down"' in response.content
    assert b"Gate monitor is down" in response.content


def test_dashboard__no_heartbeat_ever__shows_the_monitor_down_banner(client, developer):
    client.force_login(developer)

    assert b"no heartbeat yet" in client.get("/").content


def test_dashboard__monitor_fresh__no_banner(client, developer):
    monitor_heartbeat()
    client.force_login(developer)

    response = client.get("/")

    assert b'data-testid="monitor-down"' not in response.content
