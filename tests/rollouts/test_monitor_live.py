"""The gate monitor live: real Celery workers and beat (subprocesses, `celery -A
releasecontrol ...`) on a Redis of the test's own, gunicorn serving pages, the API and OFREP,
all against the test database. Real time, generous deadlines.

- Samples above the threshold for the gate's window: the automatic rollback commits within
  one tick after the window, audited as the system actor, and the real OpenFeature client
  (OFREP provider) then reads the flag off.
- Two workers running queued ticks at once never act twice (audit events counted).
- Redis stopped: pages and the manual rollback keep working, /healthz says degraded and the
  monitor down.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from collections.abc import Iterator

import pytest
import requests
from celery import Celery
from kombu import Connection
from openfeature import api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext

from flags.services import flag_create, sdk_key_issue
from releasecontrol.models import AuditEvent, MonitorHeartbeat, User
from releasecontrol.services import user_password_set
from rollouts.metrics import metric_samples_submit
from rollouts.models import Release, ReleaseEvent, ReleaseEventKind, ReleaseStatus
from rollouts.schedule import GATE_MONITOR_TICK_TASK
from rollouts.services import release_create, release_start
from tests.factories import PASSWORD
from tests.flags.live import running_gunicorn, running_redis, wait_until
from tests.rollouts.celery_live import celery_env, database_url, running_celery

pytestmark = [pytest.mark.django_db(transaction=True)]

INTERVAL = 1  # GATE_MONITOR_INTERVAL for these tests' beat, seconds
WINDOW = 3  # the gate's window, seconds
# A tick runs at most one interval after the window has passed, and takes a moment itself;
# on a shared two-core machine allow a little more than that moment.
WITHIN = INTERVAL + 1.5


@pytest.fixture
def redis_server(tmp_path):
    with running_redis(tmp_path) as server:
        yield server


@pytest.fixture(autouse=True)
def no_providers_left() -> Iterator[None]:
    yield
    api.clear_providers()


def release_in_staging(owner, staging, key: str, *, window: int = WINDOW) -> Release:
    flag = flag_create(actor=owner, key=key, name=key)
    return release_create(
        actor=owner,
        name=f"{key}-release",
        version="2.4.0",
        environment=staging,
        flags=[flag],
        plan=[{"name": "everyone", "mode": "full", "percentage": 100, "hold_seconds": 3600}],
        gates=[
            {
                "name": "errors",
                "metric": "error_rate",
                "aggregate": "avg",
                "comparator": ">",
                "threshold": 5,
                "window_seconds": window,
                "min_samples": 2,
                "on_failure": "rollback",
            }
        ],
        dead_man_seconds=3600,
        reason="ship it",
    )


def submit(agent, release: Release, value: float) -> None:
    metric_samples_submit(
        actor=agent,
        samples=[
            {
                "environment": "staging",
                "release": release.pk,
                "metric": "error_rate",
                "value": value,
            }
        ],
    )


def heartbeat_fresh() -> bool:
    beat = MonitorHeartbeat.objects.first()
    return beat is not None and (dt.datetime.now(dt.UTC) - beat.beat_at).total_seconds() < 2


def ofrep_client(server_url: str, key: str):
    api.set_provider(
        OFREPProvider(server_url, headers_factory=lambda: {"Authorization": f"Bearer {key}"}),
        "monitor-live",
    )
    return api.get_client("monitor-live")


def test_monitor_live__samples_break_the_gate__rolled_back_within_a_tick_and_sdk_reads_off(
    redis_server, tmp_path, release_manager, agent, staging
):
    release = release_in_staging(release_manager, staging, "live-checkout")
    sdk_key = sdk_key_issue(actor=User.system(), environment=staging, name="live").raw
    env = celery_env(redis_server.url, GATE_MONITOR_INTERVAL=str(INTERVAL))
    with (
        running_gunicorn(database_url(), redis_server.url, tmp_path) as server,
        running_celery("worker", env, tmp_path),
        running_celery("beat", env, tmp_path) as beat,
    ):
        wait_until(heartbeat_fresh, 60, f"the first tick\n{beat.text()}")
        release = release_start(actor=release_manager, release=release, reason="go")
        client = ofrep_client(server.url, sdk_key)
        before = client.get_boolean_details("live-checkout", False, EvaluationContext("user-1"))
        assert (before.value, before.reason) == (True, "STATIC")

        stop = threading.Event()

        def feed() -> None:
            while not stop.is_set():
                submit(agent, release, 50.0)
                time.sleep(0.2)

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        try:
            wait_until(
                lambda: Release.objects.get(pk=release.pk).status == ReleaseStatus.ROLLED_BACK,
                30,
                "the automatic rollback",
            )
        finally:
            stop.set()
            feeder.join(timeout=10)

        after = client.get_boolean_details("live-checkout", True, EvaluationContext("user-1"))
        assert (after.value, after.reason) == (False, "DISABLED")

    release = Release.objects.get(pk=release.pk)
    window_end = release.started_at + dt.timedelta(seconds=WINDOW)
    rolled = ReleaseEvent.objects.get(release=release, kind=ReleaseEventKind.ROLLED_BACK)
    assert rolled.automatic
    assert dt.timedelta(0) <= rolled.at - window_end <= dt.timedelta(seconds=WITHIN)
    [event] = AuditEvent.objects.filter(action="release.rollback", target_id=str(release.pk))
    assert (event.actor_kind, event.outcome) == ("system", "ok")
    assert event.after["evidence"][0]["outcome"] == "failure"
    assert event.after["evidence"][0]["value"] == 50.0


def test_monitor_live__two_workers_ticking_at_once__never_act_twice(
    redis_server, tmp_path, release_manager, agent, staging
):
    releases = [
        release_start(
            actor=release_manager,
            release=release_in_staging(release_manager, staging, f"busy-{n}", window=30),
            reason="go",
        )
        for n in range(12)
    ]
    # As if they started a minute ago (setup, not the code under test), with breaking samples.
    a_minute_ago = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=60)
    Release.objects.filter(pk__in=[r.pk for r in releases]).update(
        stage_entered_at=a_minute_ago, hold_started_at=a_minute_ago
    )
    for release in releases:
        submit(agent, release, 50.0)
        submit(agent, release, 60.0)
    sender = Celery()
    env = celery_env(redis_server.url)
    with (
        running_celery("worker", env, tmp_path, name="one") as one,
        running_celery("worker", env, tmp_path, name="two") as two,
    ):
        wait_until(lambda: "ready" in one.text() and "ready" in two.text(), 60, "both workers")
        with Connection(redis_server.url) as connection:  # not CELERY_BROKER_URL's Redis
            for _ in range(10):
                sender.send_task(GATE_MONITOR_TICK_TASK, connection=connection)

        def all_ticks_done() -> bool:
            done = re.compile(rf"Task {re.escape(GATE_MONITOR_TICK_TASK)}\[[^\]]+\] succeeded")
            return len(done.findall(one.text())) + len(done.findall(two.text())) == 10

        wait_until(all_ticks_done, 60, f"ten ticks\n{one.text()[-3000:]}\n{two.text()[-3000:]}")
        ticks = [
            len(re.findall(r"gate_monitor_tick\[[^\]]+\] succeeded", w.text())) for w in (one, two)
        ]

    assert all(ticks), f"both workers ran ticks: {ticks}"
    for release in releases:
        assert Release.objects.get(pk=release.pk).status == ReleaseStatus.ROLLED_BACK
        events = AuditEvent.objects.filter(action="release.rollback", target_id=str(release.pk))
        assert events.count() == 1, f"release {release.pk} rolled back {events.count()} times"
        assert ReleaseEvent.objects.filter(release=release, kind="rolled_back").count() == 1
    sender.close()


def signed_in(server_url: str, username: str) -> requests.Session:
    session = requests.Session()
    session.get(f"{server_url}/accounts/login/", timeout=10)
    answer = session.post(
        f"{server_url}/accounts/login/",
        data={
            "username": username,
            "password": PASSWORD,
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
        },
        headers={"Referer": f"{server_url}/accounts/login/"},
        timeout=10,
    )
    assert answer.status_code == 200 and "/accounts/login/" not in answer.url, answer.text[:500]
    return session


def test_monitor_live__redis_stopped__pages_and_manual_rollback_work_and_monitor_shows_down(
    redis_server, tmp_path, monkeypatch, settings, release_manager, api_token_for, staging
):
    monkeypatch.setenv("MONITOR_HEARTBEAT_STALE_AFTER", "3")
    # The server hashes as production does (the tests' fast MD5 hasher is not in its list).
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    user_password_set(actor=User.system(), user=release_manager, password=PASSWORD)
    release = release_start(
        actor=release_manager,
        release=release_in_staging(release_manager, staging, "calm-checkout", window=600),
        reason="go",
    )
    token = api_token_for(release_manager)
    env = celery_env(redis_server.url, GATE_MONITOR_INTERVAL=str(INTERVAL))
    with (
        running_gunicorn(database_url(), redis_server.url, tmp_path) as server,
        running_celery("worker", env, tmp_path),
        running_celery("beat", env, tmp_path),
    ):

        def health() -> dict:
            return requests.get(f"{server.url}/healthz", timeout=10).json()

        wait_until(lambda: health()["status"] == "ok", 60, "the monitor's first heartbeat")

        redis_server.stop()

        wait_until(lambda: health()["gate_monitor"]["status"] == "down", 30, "the stale heartbeat")
        body = health()
        assert (body["status"], body["redis"]) == ("degraded", "down")

        session = signed_in(server.url, release_manager.username)
        page = session.get(f"{server.url}/", timeout=10)
        assert page.status_code == 200
        assert 'data-testid="monitor-down"' in page.text

        answer = requests.post(
            f"{server.url}/api/v1/releases/{release.pk}/rollback",
            json={"reason": "Redis is down; rolling back by hand"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "rolled_back"

    assert Release.objects.get(pk=release.pk).status == ReleaseStatus.ROLLED_BACK
    [event] = AuditEvent.objects.filter(action="release.rollback", target_id=str(release.pk))
    assert event.actor_id == release_manager.pk
