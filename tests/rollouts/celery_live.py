"""Celery as an operator runs it, for the monitor's live tests: `celery -A releasecontrol
worker` and `celery -A releasecontrol beat` in subprocesses against the test database and a
Redis of the test's own (tests/flags/live.py), with a short GATE_MONITOR_INTERVAL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.flags.live import ROOT


def database_url() -> str:
    from django.db import connection

    return "postgres://{USER}:{PASSWORD}@{HOST}:{PORT}/{NAME}".format(**connection.settings_dict)


def celery_env(redis_url: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "releasecontrol.settings",
        "DATABASE_URL": database_url(),
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "ALLOW_PLAIN_HTTP": "1",
        "DEBUG": "0",
        "SECRET_KEY": "live-test-" + uuid.uuid4().hex,
        "ALLOWED_HOSTS": "127.0.0.1",
        **extra,
    }


@dataclass
class CeleryProcess:
    name: str
    process: subprocess.Popen
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # warm shutdown: the current task ends
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def running_celery(
    kind: str, env: dict[str, str], directory: Path, name: str = ""
) -> Iterator[CeleryProcess]:
    """`kind` is "worker" (one process, no pool children) or "beat"."""
    name = name or kind
    log = directory / f"{name}.log"
    command = [sys.executable, "-m", "celery", "-A", "releasecontrol", kind, "--loglevel=INFO"]
    if kind == "worker":
        command += ["--pool=solo", f"--hostname={name}@%h", "--without-gossip", "--without-mingle"]
    else:
        command += [f"--schedule={directory / 'celerybeat-schedule'}"]
    with log.open("ab") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out)
    running = CeleryProcess(name, process, log)
    try:
        yield running
    finally:
        running.stop()
