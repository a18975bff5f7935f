"""/healthz: the database, Redis (or "not configured") and the gate monitor's heartbeat, and a
status: ok, degraded (Redis or the monitor down; still 200) or down (no database; 503). The
dashboard says so in a banner when the monitor is down."""

import datetime as dt
import shutil
import socket
import subprocess
import time

import pytest
import time_machine
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


def test_healthz__database_redis_and_fresh_heartbeat__ok(client, db):
    monitor_heartbeat()

    body = health(client)

    assert body["database"] == "ok" and body["redis"] == "ok"
    assert body["status"] == "ok"


def test_healthz__no_heartbeat_yet__degraded_200(client, db):
    body = health(client)

    assert (body["status"], body["gate_monitor"]["status"]) == ("degraded", "down")


def test_healthz__heartbeat_goes_stale__ok_then_degraded(client, db):
    with time_machine.travel(dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC), tick=False) as clock:
        monitor_heartbeat()
        assert health(client)["status"] == "ok"

        clock.shift(dt.timedelta(seconds=settings.MONITOR_HEARTBEAT_STALE_AFTER + 1))
        body = health(client)

    assert body["status"] == "degraded"
    assert body["gate_monitor"]["status"] == "down"
    assert body["gate_monitor"]["age_seconds"] == settings.MONITOR_HEARTBEAT_STALE_AFTER + 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def own_redis(tmp_path):
    """A throwaway redis-server of this test's own, to stop for real."""
    server = shutil.which("redis-server")
    assert server, "redis-server is installed by scripts/test.sh"
    port = free_port()
    process = subprocess.Popen(
        [
            server,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:  # a live server: wait until it listens
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
    yield process, f"redis://127.0.0.1:{port}/0"
    if process.poll() is None:
        process.kill()
        process.wait()


def test_healthz__redis_stopped__degraded_200_database_still_ok(client, db, own_redis, settings):
    process, url = own_redis
    settings.REDIS_URL = url
    monitor_heartbeat()
    assert health(client)["status"] == "ok"

    process.terminate()
    process.wait(timeout=10)
    body = health(client)

    assert (body["status"], body["redis"], body["database"]) == ("degraded", "down", "ok")


HEALTH_WITHOUT_DATABASE = """
import json, django
django.setup()
from django.test import Client
response = Client().get("/healthz")
print(json.dumps({"code": response.status_code, "body": response.json()}))
"""


def test_healthz__database_unreachable__down_503(tmp_path):
    """A process whose database is a closed port: /healthz answers down with 503."""
    import json
    import os
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(
        DJANGO_SETTINGS_MODULE="releasecontrol.settings",
        DATABASE_URL=f"postgres://app:app@127.0.0.1:{free_port()}/app",
        REDIS_URL="",
        DEBUG="1",
        ALLOWED_HOSTS="testserver",
        LOG_LEVEL="CRITICAL",
    )
    result = subprocess.run(
        [sys.executable, "-c", HEALTH_WITHOUT_DATABASE],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["code"] == 503
    assert (answer["body"]["status"], answer["body"]["database"]) == ("down", "down")


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


# --- The refusal page -------------------------------------------------------------------


def test_forbidden_page__full_page__styled_and_says_why(client, developer):
    client.force_login(developer)

    response = client.get("/audit/")

    assert response.status_code == 403
    html = response.content.decode()
    assert 'data-testid="forbidden"' in html and "app.css" in html  # extends base.html
    assert "Only auditors, release managers, on-call and administrators read the trail." in html


def test_forbidden_page__htmx_request__only_the_refusal(client, developer):
    client.force_login(developer)

    response = client.get("/audit/", HTTP_HX_REQUEST="true")

    assert response.status_code == 403
    html = response.content.decode()
    assert 'data-testid="refusal"' in html and "<html" not in html
    assert "read the trail" in html
