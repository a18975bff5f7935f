#!/usr/bin/env python
"""Emergency rollback benchmark: 10,000 flags on and 100 live releases in production.

Per run, against gunicorn (2 workers x 2 threads, gthread) on PostgreSQL:

- end to end: from sending `POST /api/v1/environments/production/rollback` to its answer
  (the rollback committed), and to the first OFREP answer that is off in every web process
  (four pollers ask for one flag on a new connection each time, each every 20 ms, about 200
  requests/s in all throughout the run (--poll-interval), tagged with a probe id the access
  log ties to the worker that answered);
- the committed transaction alone: `environment_rollback` called in this process, timed from
  the call to its return (commit included);
- beside it, in the same run, a bare `UPDATE` of the same rows (the 10,000 states off with
  their versions bumped, the 100 releases rolled back, their 100 flag links not live), in one
  committed transaction.

Between runs the estate is put back by SQL (every state on, releases live, the switch
released, flags_version bumped) and the script waits until both workers answer on again.
One warm-up run comes first and is not counted (--warmup): the first rollback in a process
loads the site's URL modules (its notification links the snapshot page), which a web process
serving traffic has long done. Reported: p50 / p99 over the runs, and the transaction against
the bare UPDATE.

Usage (from the repository root):

    DATABASE_URL=postgres://app:app@127.0.0.1:27432/bench_rollback python benchmarks/rollback.py

Without DATABASE_URL a throwaway PostgreSQL is started and removed (as the other
benchmarks do). The flags are written once per database with bulk_create (about 10 s).
Options: --flags (10,000), --releases (100), --runs (20), --warmup (1), --poll-interval
(0.02 s), --json FILE. Redis is not configured: a rollback never needs it.
"""

# This script runs the programs it names (PostgreSQL, gunicorn) with arguments it builds.
# ruff: noqa: S603

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.flag_evaluation import (  # noqa: E402
    THREADS,
    WORKERS,
    Server,
    _die_with_parent,
    free_port,
    request,
    say,
    throwaway_postgres,
)

PROBE_FLAG = "rb-flag-00000"
PREFIX = "rb-flag-"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


# --- Data ----------------------------------------------------------------------------------


def prepare(flag_count: int, release_count: int) -> dict[str, Any]:
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)

    from flags.models import Flag, FlagState
    from flags.services import sdk_key_issue
    from releasecontrol.models import Environment, User
    from releasecontrol.services import api_token_issue, role_grant, user_create
    from rollouts.models import Release, ReleaseFlag, Stage

    system = User.system()
    oncall = User.objects.filter(username="bench-oncall").first()
    if oncall is None:
        oncall = user_create(actor=system, username="bench-oncall", password=secrets.token_hex(16))
        role_grant(actor=system, user=oncall, role="oncall")
    production = Environment.objects.get(slug="production")
    have = Release.objects.filter(name__startswith="rb-release-").count()
    if Flag.objects.filter(key__startswith=PREFIX).count() < flag_count or have < release_count:
        say(f"writing {flag_count} flags and {release_count} releases (once per database)...")
        Flag.objects.bulk_create(
            [Flag(key=f"{PREFIX}{i:05d}", name=f"Rollback bench {i}", on_value=True,
                  off_value=False) for i in range(flag_count)],
            ignore_conflicts=True, batch_size=2000,
        )  # fmt: skip
        flags = list(Flag.objects.filter(key__startswith=PREFIX).order_by("key"))
        FlagState.objects.bulk_create(
            [FlagState(flag=f, environment=e) for f in flags for e in Environment.objects.all()],
            ignore_conflicts=True, batch_size=5000,
        )  # fmt: skip
        for i in range(have, release_count):
            release = Release.objects.create(
                name=f"rb-release-{i}", version="1.0.0", environment=production,
                status="in_progress", current_stage_index=0, requested_by=oncall,
            )  # fmt: skip
            Stage.objects.create(release=release, index=0, name="canary", mode="percentage",
                                 percentage=5)  # fmt: skip
            ReleaseFlag.objects.create(release=release, flag=flags[i], environment=production)
    return {
        "environment": production.pk,
        "token": api_token_issue(actor=system, user=oncall, name="bench").raw,
        "sdk_key": sdk_key_issue(actor=system, environment=production, name="bench").raw,
        "oncall": oncall.pk,
    }


def reset(environment_id: int) -> None:
    """Every bench state on, the releases live, the switch released, the rollback restored."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE flags_killswitch SET released_at = now(), release_reason = 'bench' "
            "WHERE environment_id = %s AND released_at IS NULL",
            [environment_id],
        )
        cursor.execute("UPDATE rollouts_rollback SET restored_at = now() WHERE restored_at IS NULL")
        cursor.execute(
            "UPDATE releasecontrol_environment SET kill_switch_engaged = false, "
            "kill_switch_engaged_at = NULL, kill_switch_engaged_by_id = NULL, "
            "kill_switch_reason = '', flags_version = flags_version + 1 WHERE id = %s",
            [environment_id],
        )
        cursor.execute(
            "UPDATE flags_flagstate s SET mode = 'full', version = s.version + 1 FROM flags_flag f "
            "WHERE s.flag_id = f.id AND f.key LIKE %s AND s.environment_id = %s",
            [PREFIX + "%", environment_id],
        )
        cursor.execute(
            "UPDATE rollouts_release SET status = 'in_progress', ended_at = NULL "
            "WHERE environment_id = %s AND name LIKE 'rb-release-%%'",
            [environment_id],
        )
        cursor.execute(
            "UPDATE rollouts_releaseflag SET live = true WHERE release_id IN "
            "(SELECT id FROM rollouts_release WHERE name LIKE 'rb-release-%%')"
        )


def bare_update(environment_id: int) -> float:
    """The same rows changed by plain SQL in one committed transaction, in seconds."""
    from django.db import connection, transaction

    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE flags_flagstate SET mode = 'off', version = version + 1, updated_at = now() "
            "WHERE environment_id = %s AND mode <> 'off'",
            [environment_id],
        )
        cursor.execute(
            "UPDATE rollouts_release SET status = 'rolled_back', ended_at = now() "
            "WHERE environment_id = %s AND status IN ('awaiting_approval', 'in_progress', "
            "'paused')",
            [environment_id],
        )
        cursor.execute(
            "UPDATE rollouts_releaseflag SET live = false WHERE environment_id = %s AND live",
            [environment_id],
        )
    return time.perf_counter() - started


def transaction_alone(setup: dict[str, Any]) -> tuple[float, int, int]:
    from releasecontrol.models import Environment, User
    from rollouts.emergency import environment_rollback

    actor = User.objects.get(pk=setup["oncall"])
    environment = Environment.objects.get(pk=setup["environment"])
    started = time.perf_counter()
    result = environment_rollback(actor=actor, environment=environment, reason="bench")
    took = time.perf_counter() - started
    return took, len(result.turned_off), len(result.releases_stopped)


# --- The server ----------------------------------------------------------------------------


def start(env: dict[str, str], directory: Path) -> tuple[Server, Path]:
    port = free_port(random.randrange(20000, 30000))
    access, errors = directory / "access.log", directory / "error.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "releasecontrol.wsgi:application",
         "--bind", f"127.0.0.1:{port}", "--workers", str(WORKERS), "--threads", str(THREADS),
         "--worker-class", "gthread", "--access-logfile", str(access),
         "--access-logformat", "%(p)s %({x-probe}i)s", "--error-logfile", str(errors)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,
    )  # fmt: skip
    server = Server(process, port)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"bench: gunicorn exited:\n{errors.read_text()}")
        with contextlib.suppress(OSError):
            if request(server, "GET", "/healthz")[0] == 200 and len(server.workers()) == WORKERS:
                return server, access
        time.sleep(0.2)
    server.stop()
    sys.exit("bench: gunicorn did not answer")


def answered_by(access: Path) -> dict[str, int]:
    probes = {}
    for line in access.read_text().splitlines():
        pid, _, probe = line.partition(" ")
        if probe and probe != "-":
            probes[probe] = int(pid.strip("<>"))
    return probes


class Pollers:
    """Four threads asking OFREP for one flag, a new connection each time, each request
    tagged, each thread at most one request per `interval` seconds (0: as fast as it can);
    answers kept as (probe, sent, received, value)."""

    def __init__(self, server: Server, sdk_key: str, interval: float) -> None:
        self.server, self.sdk_key, self.interval = server, sdk_key, interval
        self.answers: list[tuple[str, float, float, bool]] = []
        self.lock, self.stop = threading.Lock(), threading.Event()
        self.count = 0
        self.started = time.perf_counter()
        self.threads = [threading.Thread(target=self.poll, daemon=True) for _ in range(4)]
        for thread in self.threads:
            thread.start()

    def poll(self) -> None:
        body = b'{"context":{"targetingKey":"probe"}}'
        while not self.stop.is_set():
            with self.lock:
                self.count += 1
                probe = f"p{self.count}"
            sent = time.perf_counter()
            with contextlib.suppress(OSError):
                headers = {"Authorization": f"Bearer {self.sdk_key}", "X-Probe": probe}
                status, _, raw = request(
                    self.server, "POST", f"/ofrep/v1/evaluate/flags/{PROBE_FLAG}", body,
                    Connection="close", **headers,
                )  # fmt: skip
                if status == 200:
                    with self.lock:
                        self.answers.append(
                            (probe, sent, time.perf_counter(), json.loads(raw)["value"])
                        )
            self.stop.wait(max(0.0, sent + self.interval - time.perf_counter()))

    def rate(self) -> float:
        """Requests sent per second since the pollers started."""
        return self.count / (time.perf_counter() - self.started)

    def take(self) -> list[tuple[str, float, float, bool]]:
        with self.lock:
            taken, self.answers = self.answers, []
        return taken

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()


def wait_on_everywhere(pollers: Pollers, access: Path, workers: set[int]) -> None:
    deadline = time.monotonic() + 30
    pollers.take()
    while time.monotonic() < deadline:
        time.sleep(0.3)
        answers = pollers.take()
        by = answered_by(access)
        on = {by.get(p) for p, _, _, v in answers if v is True}
        if workers <= on and all(v for *_, v in answers[-8:]):
            return
    sys.exit("bench: the workers did not answer on again after the reset")


def end_to_end(server: Server, access: Path, pollers: Pollers, setup: dict) -> dict[str, float]:
    workers = set(server.workers())
    wait_on_everywhere(pollers, access, workers)
    time.sleep(random.uniform(0.05, 0.2))
    body = json.dumps({"reason": "bench"}).encode()
    sent = time.perf_counter()
    status, _, raw = request(
        server, "POST", "/api/v1/environments/production/rollback", body,
        Authorization=f"Bearer {setup['token']}", **{"Content-Type": "application/json"},
    )  # fmt: skip
    committed = time.perf_counter()
    if status != 200:
        sys.exit(f"bench: rollback answered {status}: {raw[:300]!r}")
    answer = json.loads(raw)
    deadline = time.monotonic() + 10
    first_off: dict[int, float] = {}
    seen: list[tuple[str, float, float, bool]] = []
    while time.monotonic() < deadline and set(first_off) != workers:
        time.sleep(0.05)
        seen += pollers.take()
        by = answered_by(access)
        for probe, sent_at, received, value in seen:
            pid = by.get(probe)
            if pid is not None and value is False and sent_at >= sent:
                first_off[pid] = min(first_off.get(pid, received), received)
    if set(first_off) != workers:
        sys.exit("bench: not every worker answered off within 10 s")
    return {
        "committed_s": committed - sent,
        "all_workers_off_s": max(first_off.values()) - sent,
        "turned_off": len(answer["turned_off"]),
        "releases_stopped": len(answer["releases_stopped"]),
    }


# --- Main ----------------------------------------------------------------------------------


def benchmark(args: argparse.Namespace, database_url: str) -> dict[str, Any]:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "releasecontrol.settings")
    os.environ.setdefault("SECRET_KEY", "bench-" + secrets.token_hex(16))
    os.environ.setdefault("ALLOW_PLAIN_HTTP", "1")
    os.environ["REDIS_URL"] = ""
    setup = prepare(args.flags, args.releases)
    env = {**os.environ, "ALLOWED_HOSTS": "127.0.0.1", "DEBUG": "0", "REDIS_URL": ""}
    directory = Path(tempfile.mkdtemp(prefix="rc-bench-rollback-"))
    server, access = start(env, directory)
    pollers = Pollers(server, setup["sdk_key"], args.poll_interval)
    runs: list[dict[str, float]] = []
    try:
        for n in range(1 - args.warmup, args.runs + 1):
            reset(setup["environment"])
            bare = bare_update(setup["environment"])
            reset(setup["environment"])
            alone, turned_off, stopped = transaction_alone(setup)
            reset(setup["environment"])
            e2e = end_to_end(server, access, pollers, setup)
            run = {"bare_update_s": bare, "transaction_s": alone, **e2e}
            assert turned_off == e2e["turned_off"] == args.flags, (turned_off, e2e)
            assert stopped == e2e["releases_stopped"] == args.releases
            if n > 0:
                runs.append(run)
            label = "warm-up" if n <= 0 else f"run {n:2d}"
            say(
                f"{label}: bare UPDATE {bare * 1000:6.1f} ms  transaction "
                f"{alone * 1000:6.1f} ms  API committed {e2e['committed_s'] * 1000:6.1f} ms  "
                f"every worker off {e2e['all_workers_off_s'] * 1000:6.1f} ms"
            )
    finally:
        ofrep_rate = pollers.rate()
        pollers.close()
        server.stop()
        reset(setup["environment"])

    def stats(name: str) -> dict[str, float]:
        values = [r[name] * 1000 for r in runs]
        return {
            "p50_ms": round(statistics.median(values), 1),
            "p99_ms": round(percentile(values, 99), 1),
        }

    result = {
        "flags": args.flags,
        "releases": args.releases,
        "runs": args.runs,
        "warmup": args.warmup,
        "server": f"gunicorn {WORKERS} workers x {THREADS} threads (gthread)",
        "ofrep_requests_per_s": round(ofrep_rate),
        "bare_update": stats("bare_update_s"),
        "transaction": stats("transaction_s"),
        "api_committed": stats("committed_s"),
        "every_worker_off": stats("all_workers_off_s"),
    }
    result["transaction_over_bare_p50"] = round(
        result["transaction"]["p50_ms"] / result["bare_update"]["p50_ms"], 2
    )
    result["transaction_over_bare_p99"] = round(
        result["transaction"]["p99_ms"] / result["bare_update"]["p99_ms"], 2
    )
    return result


def report(result: dict[str, Any]) -> str:
    rows = [
        ("bare UPDATE of the same rows", result["bare_update"]),
        ("rollback transaction (in process)", result["transaction"]),
        ("API request -> committed answer", result["api_committed"]),
        ("API request -> every worker off", result["every_worker_off"]),
    ]
    lines = [
        f"{result['flags']} flags on, {result['releases']} live releases, {result['runs']} runs, "
        f"{result['server']}, OFREP polled {result['ofrep_requests_per_s']} requests/s "
        "throughout",
        "",
        "| measured | p50 | p99 |",
        "|---|---|---|",
        *(f"| {name} | {r['p50_ms']} ms | {r['p99_ms']} ms |" for name, r in rows),
        "",
        f"transaction / bare UPDATE: {result['transaction_over_bare_p50']}x at p50, "
        f"{result['transaction_over_bare_p99']}x at p99",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flags", type=int, default=10_000)
    parser.add_argument("--releases", type=int, default=100)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=1, help="runs first, not counted (1)")
    parser.add_argument(
        "--poll-interval", type=float, default=0.02,
        help="seconds between one poller's requests (0.02: about 200 requests/s in all; "
        "0: as fast as they can, which on a 2-core machine takes the cores the server needs)",
    )  # fmt: skip
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if os.environ.get("DATABASE_URL"):
        result = benchmark(args, os.environ["DATABASE_URL"])
    else:
        with throwaway_postgres() as url:
            result = benchmark(args, url)
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
