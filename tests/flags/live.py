"""A live server as an operator runs it: gunicorn (2 workers x 4 threads, gthread) in a
subprocess on a free loopback port against the test database, with its own Redis.

The fixtures (`redis_server`, `gunicorn_server`) are in tests/flags/conftest.py.
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 2


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


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
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


@contextmanager
def running_redis(directory: Path) -> Iterator[RedisServer]:
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
            str(directory),
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
    error_log: Path

    def worker_pids(self) -> set[int]:
        """The master's children right now: a worker that died and was replaced shows up
        as a new pid."""
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

    def workers_booted(self) -> int:
        """How many times gunicorn started a worker (more than WORKERS: one was replaced)."""
        return self.error_log.read_text().count("Booting worker")


@contextmanager
def running_gunicorn(database_url: str, redis_url: str, directory: Path) -> Iterator[LiveServer]:
    port = free_port()
    access_log = directory / "access.log"
    error_log = directory / "error.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "releasecontrol.settings",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "ALLOW_PLAIN_HTTP": "1",
        "DEBUG": "0",
        "SECRET_KEY": "live-test-" + uuid.uuid4().hex,
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
            str(error_log),
        ],
        cwd=ROOT,
        env=env,
    )
    server = LiveServer(f"http://127.0.0.1:{port}", process, access_log, error_log)

    def ready() -> bool:
        assert process.poll() is None, error_log.read_text()
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
