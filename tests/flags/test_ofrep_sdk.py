"""The real OpenFeature Python SDK with its OFREP provider against a live multi-process server.

gunicorn (2 workers x 4 threads) runs in a subprocess on a free loopback port against this
test database, with REDIS_URL pointing at a Redis this module starts (and, in one test,
stops). Flags are changed through the services in this process; the SDK reads them back.
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from django.db import connection
from openfeature import api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext

from flags.rules import in_percentage
from flags.services import environment_rollback, flag_create, flag_state_set, sdk_key_issue
from releasecontrol.models import User

# Needs redis-server on PATH: scripts/test.sh installs it.
pytestmark = [pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 2
VISIBLE_WITHIN = 0.100  # seconds, DESIGN.md


def free_port() -> int:
    """A free loopback port below 32768 (the ephemeral range above can collide with client
    sockets), starting from a random point so concurrent runs rarely race for one."""
    start = random.randrange(20_000, 32_000)
    for port in itertools.chain(range(start, 32_768), range(20_000, start)):
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port on 127.0.0.1 below 32768")


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@dataclass
class RedisServer:
    url: str
    port: int
    process: subprocess.Popen

    def stop(self) -> None:
        if self.process.poll() is None:
            subprocess.run(
                ["redis-cli", "-p", str(self.port), "shutdown", "nosave"],
                capture_output=True,
                timeout=10,
            )
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def redis_server(tmp_path) -> Iterator[RedisServer]:
    port = free_port()
    process = subprocess.Popen(
        [
            "redis-server",
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
    server = RedisServer(f"redis://127.0.0.1:{port}/0", port, process)

    def answers() -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    try:
        wait_until(answers, 10, "redis-server")
        yield server
    finally:
        server.stop()


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen
    access_log: Path

    def worker_pids(self) -> set[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return {int(pid) for pid in children.read_text().split()}

    def answered_by(self) -> dict[str, int]:
        """probe id -> pid of the worker that answered it, from the access log."""
        probes = {}
        for line in self.access_log.read_text().splitlines():
            pid, probe, _status = line.split(" ", 2)
            if probe != "-":
                probes[probe] = int(pid.strip("<>"))
        return probes


@pytest.fixture
def gunicorn_server(transactional_db, redis_server, tmp_path) -> Iterator[LiveServer]:
    settings_dict = connection.settings_dict
    database_url = "postgres://{USER}:{PASSWORD}@{HOST}:{PORT}/{NAME}".format(**settings_dict)
    port = free_port()
    access_log = tmp_path / "access.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "releasecontrol.settings",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_server.url,
        "CELERY_BROKER_URL": redis_server.url,
        "ALLOW_PLAIN_HTTP": "1",
        "DEBUG": "0",
        "SECRET_KEY": "ofrep-sdk-test-" + uuid.uuid4().hex,
        "ALLOWED_HOSTS": "127.0.0.1",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "releasecontrol.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(WORKERS),
            "--threads",
            "4",
            "--worker-class",
            "gthread",
            "--access-logfile",
            str(access_log),
            # pid, the probe id the test sends, status: which worker answered what.
            "--access-logformat",
            "%(p)s %({x-probe}i)s %(s)s",
            "--error-logfile",
            str(tmp_path / "error.log"),
        ],
        cwd=ROOT,
        env=env,
    )
    server = LiveServer(f"http://127.0.0.1:{port}", process, access_log)

    def ready() -> bool:
        assert process.poll() is None, (tmp_path / "error.log").read_text()
        try:
            return requests.get(f"{server.url}/healthz", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_until(ready, 30, "gunicorn")
        wait_until(lambda: len(server.worker_pids()) == WORKERS, 10, "both workers")
        yield server
    finally:
        process.send_signal(signal.SIGINT)  # quick shutdown: keep-alive clients hold none up
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        api.clear_providers()


@pytest.fixture
def sdk_key(production) -> str:
    return sdk_key_issue(actor=User.system(), environment=production, name="sdk-test").raw


_domains = itertools.count()


def sdk_client(server: LiveServer, key: str, *, new_connection_each_time: bool = False):
    """An OpenFeature client on its own OFREP provider, tagging each request with a probe id."""
    probes = itertools.count()
    domain = f"ofrep-{next(_domains)}"
    sent: list[str] = []

    def headers() -> dict[str, str]:
        probe = f"{domain}-{next(probes)}"
        sent.append(probe)
        extra = {"Connection": "close"} if new_connection_each_time else {}
        return {"Authorization": f"Bearer {key}", "X-Probe": probe, **extra}

    api.set_provider(OFREPProvider(server.url, headers_factory=headers, timeout=5), domain)
    client = api.get_client(domain)
    client.sent = sent  # type: ignore[attr-defined]
    return client


def details(client, flag_key: str, targeting_key: str | None = None) -> Any:
    ctx = EvaluationContext(targeting_key=targeting_key) if targeting_key else None
    return client.get_boolean_details(flag_key, True, ctx)  # default True: off must come from us


def test_sdk__flag_through_its_modes__each_answer_as_designed(
    gunicorn_server, sdk_key, developer, release_manager, production
):
    flag = flag_create(actor=developer, key="new-checkout", name="New checkout")
    client = sdk_client(gunicorn_server, sdk_key)

    off = details(client, "new-checkout", "user-1")
    assert (off.value, off.reason, off.variant, off.error_code) == (False, "DISABLED", "off", None)

    flag_state_set(
        actor=release_manager,
        flag=flag,
        environment=production,
        mode="allowlist",
        allowlist=["pilot-7"],
        reason="pilot customer",
    )
    time.sleep(VISIBLE_WITHIN)
    on = details(client, "new-checkout", "pilot-7")
    other = details(client, "new-checkout", "user-1")
    assert (on.value, on.reason, on.variant) == (True, "TARGETING_MATCH", "on")
    assert (other.value, other.reason, other.variant) == (False, "DEFAULT", "off")
    missing = details(client, "new-checkout")
    assert (missing.value, missing.error_code) == (True, "TARGETING_KEY_MISSING")

    flag_state_set(
        actor=release_manager,
        flag=flag,
        environment=production,
        mode="shadow",
        reason="dark launch",
    )
    time.sleep(VISIBLE_WITHIN)
    shadow = details(client, "new-checkout", "pilot-7")
    assert (shadow.value, shadow.reason, shadow.flag_metadata) == (
        False,
        "DISABLED",
        {"shadow": True},
    )

    unknown = details(client, "no-such-flag", "pilot-7")
    assert (unknown.value, unknown.error_code) == (True, "FLAG_NOT_FOUND")


def test_sdk__fifty_percent__two_thousand_keys_split_by_the_murmur3_formula(
    gunicorn_server, sdk_key, developer, release_manager, production
):
    flag = flag_create(actor=developer, key="ai-concierge", name="AI concierge")
    flag_state_set(
        actor=release_manager,
        flag=flag,
        environment=production,
        mode="percentage",
        percentage=50,
        reason="half of the traffic",
    )
    client = sdk_client(gunicorn_server, sdk_key)
    keys = [f"customer-{i}" for i in range(2_000)]
    answers = {key: details(client, "ai-concierge", key) for key in keys}

    assert {a.reason for a in answers.values()} == {"SPLIT"}
    assert all(a.value is in_percentage("ai-concierge", key, 50) for key, a in answers.items())
    share = sum(a.value for a in answers.values()) / len(keys)
    assert 0.45 <= share <= 0.55


def test_sdk__environment_kill_switch__every_worker_answers_off_within_100_ms(
    gunicorn_server, sdk_key, developer, release_manager, oncall, production
):
    flag = flag_create(actor=developer, key="calling", name="Outbound calling")
    flag_state_set(
        actor=release_manager, flag=flag, environment=production, mode="full", reason="go"
    )
    clients = [
        sdk_client(gunicorn_server, sdk_key, new_connection_each_time=True) for _ in range(6)
    ]
    # Both workers have answered (so both hold a snapshot) before the switch is thrown.
    warm = clients[0]
    wait_until(
        lambda: (
            details(warm, "calling").value is True
            and set(gunicorn_server.answered_by().values()) == gunicorn_server.worker_pids()
        ),
        10,
        "both workers to answer on",
    )

    environment_rollback(actor=oncall, environment=production, reason="calls failing")
    committed = time.monotonic()
    answers: list[tuple[float, str, Any]] = []  # (sent after commit, probe, details)
    lock = threading.Lock()

    def poll(client) -> None:
        while (sent := time.monotonic() - committed) < 1.0:
            result = details(client, "calling")
            with lock:
                answers.append((sent, client.sent[-1], result))

    threads = [threading.Thread(target=poll, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    late = [(probe, a) for sent, probe, a in answers if sent >= VISIBLE_WITHIN]
    assert late
    assert all(a.value is False and a.flag_metadata == {"killSwitch": True} for _, a in late), [
        (p, a.value) for p, a in late if a.value is not False
    ]
    wait_until(lambda: all(p in gunicorn_server.answered_by() for p, _ in late), 5, "access log")
    workers = {gunicorn_server.answered_by()[probe] for probe, _ in late}
    assert workers == gunicorn_server.worker_pids(), "both workers must have answered after 100 ms"
    first_off = min(sent for sent, _, a in answers if a.value is False)
    assert first_off < VISIBLE_WITHIN


def test_sdk__redis_stopped__evaluation_still_answers_and_sees_changes(
    gunicorn_server, redis_server, sdk_key, developer, release_manager, production
):
    flag = flag_create(actor=developer, key="ocr", name="OCR")
    client = sdk_client(gunicorn_server, sdk_key)
    assert requests.get(f"{gunicorn_server.url}/healthz", timeout=5).json()["redis"] == "ok"
    assert details(client, "ocr", "user-1").value is False

    redis_server.stop()
    assert requests.get(f"{gunicorn_server.url}/healthz", timeout=5).json()["redis"] == "down"

    flag_state_set(
        actor=release_manager, flag=flag, environment=production, mode="full", reason="go"
    )
    time.sleep(VISIBLE_WITHIN)
    answer = details(client, "ocr", "user-1")
    assert (answer.value, answer.reason, answer.error_code) == (True, "STATIC", None)
