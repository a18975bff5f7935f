#!/usr/bin/env python
"""Flag evaluation benchmark: OFREP throughput and latency beside trivial views, and freshness.

With 1,000 flags in production, against gunicorn (2 workers x 2 threads, gthread) on
PostgreSQL, at 32 connections (wrk, keep-alive), each measured in the same run as a trivial
JSON view of the same server:

- single evaluation (POST /ofrep/v1/evaluate/flags/{key}, a percentage flag, a different
  targeting key per request) beside /bench/trivial (a small constant JSON object);
- bulk evaluation (POST /ofrep/v1/evaluate/flags, all 1,000 flags) beside
  /bench/trivial-large (a same-sized JSON document serialised per request);
- bulk with a matching If-None-Match (304) beside /bench/trivial;
- the time from a committed change (flag_state_set returned) to the first evaluation that
  sees it, and to the last one that does not (every worker polled), idle and under load.

Before each measured run the script waits until both workers are idle, and after it checks
from /proc/<pid>/stat that both did a similar share of the CPU work (one worker taking every
keep-alive connection would halve the figure); an unbalanced run is repeated.

Usage (from the repository root):

    DATABASE_URL=postgres://app:app@127.0.0.1:27432/bench python benchmarks/flag_evaluation.py

DATABASE_URL names a database the script may migrate and fill (flags bench-flag-0000...,
an account `bench-rm`); without it the script starts a throwaway PostgreSQL on a free
loopback port (as scripts/test.sh does; as root it runs the server as `postgres`) and removes
it afterwards. Needs wrk (Debian package `wrk`). Options: --duration, --connections,
--flags, --trials, --json FILE. Redis is not configured: evaluation never needs it.
"""

# This script runs the programs it names (PostgreSQL, gunicorn, wrk) with arguments it builds.
# ruff: noqa: S603, S607

from __future__ import annotations

import argparse
import contextlib
import ctypes
import glob
import http.client
import json
import math
import os
import random
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

WORKERS = 2
THREADS = 2
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MIN_WORKER_SHARE = 0.35  # a run where one worker did more than 65% of the work is repeated
ATTEMPTS = 6


def say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def free_port(start: int) -> int:
    for port in range(start, 32768):  # below the ephemeral range
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port on 127.0.0.1 below 32768")


# --- A throwaway PostgreSQL (when DATABASE_URL is not set) --------------------------------


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[str]:
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    if not bins:
        sys.exit("bench: PostgreSQL is not installed; install it or set DATABASE_URL")
    pgbin = bins[-1]
    tmp = Path(tempfile.mkdtemp(prefix="rc-bench-pg-"))
    as_postgres: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(tmp, "postgres", "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    run = dict(check=True, capture_output=True, cwd=tmp)
    started = False
    try:
        subprocess.run(
            [*as_postgres, f"{pgbin}/initdb", "-D", f"{tmp}/data", "-U", "postgres", "-A", "trust",
             "--no-sync", "-E", "UTF8", "--locale=C.UTF-8"],
            **run,
        )  # fmt: skip
        port = free_port(25432)
        options = (
            f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        subprocess.run(
            [*as_postgres, f"{pgbin}/pg_ctl", "-D", f"{tmp}/data", "-l", f"{tmp}/log", "-w",
             "-o", options, "start"],
            **run,
        )  # fmt: skip
        started = True
        subprocess.run(
            [f"{pgbin}/psql", "-h", str(tmp), "-p", str(port), "-U", "postgres", "-q",
             "-c", "CREATE ROLE app LOGIN PASSWORD 'app'",
             "-c", "CREATE DATABASE bench OWNER app"],
            **run,
        )  # fmt: skip
        say(f"throwaway PostgreSQL on 127.0.0.1:{port}")
        yield f"postgres://app:app@127.0.0.1:{port}/bench"
    finally:
        if started:
            subprocess.run(
                [*as_postgres, f"{pgbin}/pg_ctl", "-D", f"{tmp}/data", "-m", "immediate", "stop"],
                capture_output=True,
                cwd=tmp,
            )
        shutil.rmtree(tmp, ignore_errors=True)


# --- Data ----------------------------------------------------------------------------------


def flag_key(i: int) -> str:
    return f"bench-flag-{i:04d}"


def production_state(i: int) -> dict[str, Any] | None:
    """A mix like a real estate of flags: 40% off, 20% full, 20% percentage, 10% allowlist,
    10% shadow. None: leave it off."""
    kind = i % 10
    if kind < 4:
        return None
    if kind < 6:
        return {"mode": "full"}
    if kind < 8:
        return {"mode": "percentage", "percentage": 5 + i % 90, "allowlist": [f"vip-{i % 7}"]}
    if kind == 8:
        return {"mode": "allowlist", "allowlist": [f"customer-{n}" for n in range(i % 50)]}
    return {"mode": "shadow"}


def prepare_database(flag_count: int) -> tuple[str, str]:
    """Migrate, make the flags (once), issue an SDK key. Returns (sdk key, release manager)."""
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)

    from flags.models import Flag
    from flags.services import flag_create, flag_state_set, sdk_key_issue
    from releasecontrol.models import Environment, User
    from releasecontrol.services import role_grant, user_create

    system = User.system()
    manager = User.objects.filter(username="bench-rm").first()
    if manager is None:
        manager = user_create(actor=system, username="bench-rm", password=secrets.token_hex(16))
        role_grant(actor=system, user=manager, role="release_manager")
    production = Environment.objects.get(slug="production")
    existing = set(Flag.objects.filter(key__startswith="bench-").values_list("key", flat=True))
    missing = [i for i in range(flag_count) if flag_key(i) not in existing]
    if missing:
        say(f"creating {len(missing)} flags (once per database)...")
        started = time.monotonic()
        for i in missing:
            flag = flag_create(actor=manager, key=flag_key(i), name=f"Bench flag {i}")
            state = production_state(i)
            if state:
                flag_state_set(
                    actor=manager, flag=flag, environment=production, reason="bench", **state
                )
        say(f"  done in {time.monotonic() - started:.0f} s")
    if "bench-visibility" not in existing:
        flag_create(actor=manager, key="bench-visibility", name="Visibility probe")
    key = sdk_key_issue(actor=system, environment=production, name="bench").raw
    return key, manager.username


def bulk_size(sdk_key: str) -> int:
    from flags.evaluation import store

    return len(store.environment_for_key(sdk_key).bulk_body("customer-1"))


# --- The server ----------------------------------------------------------------------------


@dataclass
class Server:
    process: subprocess.Popen
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def workers(self) -> list[int]:
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return sorted(int(pid) for pid in path.read_text().split())

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _die_with_parent() -> None:
    """In the child: SIGTERM when the benchmark dies, so no server is left behind."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def start_server(env: dict[str, str], log: Path) -> Server:
    port = free_port(random.randrange(20000, 30000))
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "releasecontrol.wsgi:application",
         "--bind", f"127.0.0.1:{port}", "--workers", str(WORKERS), "--threads", str(THREADS),
         "--worker-class", "gthread", "--error-logfile", str(log), "--log-level", "warning"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
        preexec_fn=_die_with_parent,
    )  # fmt: skip
    server = Server(process, port)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"bench: gunicorn exited:\n{log.read_text()}")
        with contextlib.suppress(OSError):
            status, _, _ = request(server, "GET", "/healthz")
            if status == 200 and len(server.workers()) == WORKERS:
                return server
        time.sleep(0.2)
    server.stop()
    sys.exit(f"bench: gunicorn did not answer:\n{log.read_text()}")


def request(
    server: Server, method: str, path: str, body: bytes | None = None, **headers: str
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


# --- Load with wrk -------------------------------------------------------------------------


@dataclass
class Scenario:
    name: str
    path: str
    headers: dict[str, str]
    body: str | None = None  # fixed body; None: a different targeting key per request


@dataclass
class Run:
    name: str
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    requests: int
    errors: int
    worker_share: list[float]
    attempts: int


def lua_script(scenario: Scenario) -> str:
    headers = "\n".join(
        f"headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in scenario.headers.items()
    )
    if scenario.body is None:
        body = '\'{"context":{"targetingKey":"customer-\' .. counter .. \'"}}\''
    else:
        body = json.dumps(scenario.body)
    return f"""
local counter = 0
local headers = {{}}
headers["Content-Type"] = "application/json"
{headers}
request = function()
  counter = counter + 1
  return wrk.format("POST", {json.dumps(scenario.path)}, headers, {body})
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %.1f %d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), latency.mean,
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def wait_idle(server: Server, timeout: float = 20) -> None:
    """Until no worker used CPU for two samples in a row (keep-alive connections closed)."""
    deadline = time.monotonic() + timeout
    quiet = 0
    before = [cpu_ticks(pid) for pid in server.workers()]
    while time.monotonic() < deadline and quiet < 2:
        time.sleep(0.25)
        now = [cpu_ticks(pid) for pid in server.workers()]
        quiet = quiet + 1 if all(n - b <= 1 for n, b in zip(now, before, strict=True)) else 0
        before = now
    time.sleep(0.5)


def wrk(server: Server, scenario: Scenario, duration: float, connections: int) -> Run:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua_script(scenario))
    best: Run | None = None
    try:
        for attempt in range(1, ATTEMPTS + 1):
            wait_idle(server)
            workers = server.workers()
            before = [cpu_ticks(pid) for pid in workers]
            output = subprocess.run(
                ["wrk", "-t", "1", "-c", str(connections), "-d", f"{max(1, round(duration))}s",
                 "--timeout", "5s", "-s", script.name, server.url],
                capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
            used = [cpu_ticks(pid) - b for pid, b in zip(workers, before, strict=True)]
            line = next(x for x in output.splitlines() if x.startswith("RESULT "))
            count, micros, p50, p99, mean, errors = line.split()[1:]
            share = [u / max(1, sum(used)) for u in used]
            run = Run(
                name=scenario.name,
                requests_per_second=int(count) / (int(micros) / 1e6),
                p50_ms=int(p50) / 1000,
                p99_ms=int(p99) / 1000,
                mean_ms=float(mean) / 1000,
                requests=int(count),
                errors=int(errors),
                worker_share=[round(s, 3) for s in share],
                attempts=attempt,
            )
            say(
                f"  {scenario.name:<22} {run.requests_per_second:8.0f} req/s  p50 "
                f"{run.p50_ms:6.2f} ms  p99 {run.p99_ms:6.2f} ms  workers "
                f"{'/'.join(f'{s:.0%}' for s in share)}  errors {run.errors}"
            )
            if best is None or min(share) > min(best.worker_share):
                best = run
            if min(share) >= MIN_WORKER_SHARE:
                return run
            say("  unbalanced (one worker took most connections): again")
        assert best is not None
        return best
    finally:
        os.unlink(script.name)


# --- Freshness -----------------------------------------------------------------------------


@dataclass
class Visibility:
    under_load: bool
    # From the commit to the first answer with the new value: when its request was sent, and
    # when the answer arrived (the evaluation happened in between).
    first_seen_sent_ms: list[float] = field(default_factory=list)
    first_seen_received_ms: list[float] = field(default_factory=list)
    # From the commit to the last request sent that still got the old value: every request
    # sent later saw the change (None: no request sent after the commit got the old value).
    last_stale_sent_ms: list[float] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)  # answers per change, for context


def measure_visibility(
    server: Server, sdk_key: str, manager_name: str, trials: int, under_load: bool
) -> Visibility:
    """Flip bench-visibility off <-> full while pollers ask for it (a new connection each
    time, so both workers answer), noting when each request was sent and answered."""
    from flags.models import Flag
    from flags.services import flag_state_set
    from releasecontrol.models import Environment, User

    manager = User.objects.get(username=manager_name)
    flag = Flag.objects.get(key="bench-visibility")
    production = Environment.objects.get(slug="production")
    body = b'{"context":{"targetingKey":"probe"}}'
    answers: list[tuple[float, float, bool]] = []  # (sent, received, value)
    lock = threading.Lock()
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            sent = time.perf_counter()
            try:
                status, _, raw = request(
                    server,
                    "POST",
                    "/ofrep/v1/evaluate/flags/bench-visibility",
                    body,
                    Authorization=f"Bearer {sdk_key}",
                    Connection="close",
                )
            except OSError:
                continue
            received = time.perf_counter()
            if status == 200:
                with lock:
                    answers.append((sent, received, json.loads(raw)["value"]))

    pollers = [threading.Thread(target=poll, daemon=True) for _ in range(4)]
    for thread in pollers:
        thread.start()
    result = Visibility(under_load)
    mode = "off"
    try:
        time.sleep(0.5)
        for _ in range(trials):
            mode = "full" if mode == "off" else "off"
            time.sleep(random.uniform(0.1, 0.3))  # commit at a random point of the checks
            flag_state_set(
                actor=manager, flag=flag, environment=production, mode=mode, reason="bench"
            )
            committed = time.perf_counter()  # the transaction committed before this
            time.sleep(1.0)
            new_value = mode == "full"
            with lock:
                after = [
                    (sent - committed, received - committed, value)
                    for sent, received, value in answers
                    if received >= committed
                ]
                answers.clear()
            seen = sorted((r, s) for s, r, value in after if value is new_value and s >= 0)
            stale = [sent for sent, _, value in after if value is not new_value and sent >= 0]
            first_received, first_sent = seen[0] if seen else (math.inf, math.inf)
            result.first_seen_sent_ms.append(round(first_sent * 1000, 1))
            result.first_seen_received_ms.append(round(first_received * 1000, 1))
            result.last_stale_sent_ms.append(round(max(stale, default=0) * 1000, 1))
            result.answers.append(len(after))
    finally:
        stop.set()
        for thread in pollers:
            thread.join()
        if mode != "off":
            flag_state_set(
                actor=manager, flag=flag, environment=production, mode="off", reason="bench"
            )
    return result


# --- Main ----------------------------------------------------------------------------------


def median_run(runs: list[Run]) -> Run:
    """The run with the median throughput (its latencies come with it)."""
    return sorted(runs, key=lambda r: r.requests_per_second)[len(runs) // 2]


def ratio(a: float, b: float) -> float:
    return round(a / b, 2) if b else float("inf")


def benchmark(args: argparse.Namespace, database_url: str) -> dict[str, Any]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "benchmarks.bench_settings",
        "DATABASE_URL": database_url,
        "DEBUG": "0",
        "ALLOW_PLAIN_HTTP": "1",
        "SECRET_KEY": os.environ.get("SECRET_KEY") or secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
    }
    for name in ("REDIS_URL", "CELERY_BROKER_URL"):  # evaluation needs neither
        env.pop(name, None)
    os.environ.clear()
    os.environ.update(env)

    sdk_key, manager = prepare_database(args.flags)
    size = bulk_size(sdk_key)
    env["BENCH_TRIVIAL_LARGE_BYTES"] = str(size)
    log = Path(tempfile.mkstemp(prefix="rc-bench-gunicorn-", suffix=".log")[1])
    server = start_server(env, log)
    try:
        auth = {"Authorization": f"Bearer {sdk_key}"}
        single = f"/ofrep/v1/evaluate/flags/{flag_key(6)}"  # a percentage flag
        status, _, answer = request(server, "POST", single, b"{}", **auth)
        assert status == 400, (status, answer)  # percentage without a key: TARGETING_KEY_MISSING
        _, headers, bulk = request(
            server, "POST", "/ofrep/v1/evaluate/flags", b'{"context":{"targetingKey":"c"}}', **auth
        )
        etag = headers["ETag"]
        status, _, _ = request(
            server,
            "POST",
            "/ofrep/v1/evaluate/flags",
            b'{"context":{"targetingKey":"c"}}',
            **auth,
            **{"If-None-Match": etag},
        )
        assert status == 304, status
        _, _, large = request(server, "POST", "/bench/trivial-large", b"{}")
        flags = len(json.loads(bulk)["flags"])
        say(f"{flags} flags; bulk answer {len(bulk)} bytes, trivial-large {len(large)} bytes")

        scenarios = {
            "trivial": Scenario("trivial", "/bench/trivial", {}),
            "single": Scenario("ofrep single", single, auth),
            "trivial-large": Scenario("trivial-large", "/bench/trivial-large", {}),
            "bulk": Scenario("ofrep bulk", "/ofrep/v1/evaluate/flags", auth),
            "bulk-304": Scenario(
                "ofrep bulk 304",
                "/ofrep/v1/evaluate/flags",
                {**auth, "If-None-Match": etag},
                '{"context":{"targetingKey":"c"}}',
            ),
        }
        rounds: dict[str, list[Run]] = {name: [] for name in scenarios}
        if args.rounds:
            say("warming up")
            for scenario in scenarios.values():
                wrk(server, scenario, 2, args.connections)
            say(
                f"measuring: {args.rounds} rounds of {args.duration:g} s per run, "
                f"{args.connections} connections"
            )
        for number in range(1, args.rounds + 1):
            say(f"round {number}")
            # Interleaved, so that a slow phase of a shared machine hits both sides of a ratio.
            for name in ("trivial", "single", "trivial-large", "bulk", "bulk-304"):
                rounds[name].append(wrk(server, scenarios[name], args.duration, args.connections))
        runs = {name: median_run(runs) for name, runs in rounds.items() if runs}

        say("visibility of a committed change, idle and under load")
        idle = measure_visibility(server, sdk_key, manager, args.trials, under_load=False)
        load = subprocess.Popen(
            ["wrk", "-t", "1", "-c", str(args.connections), "-d", "600s", "-s",
             _script_file(scenarios["single"]), server.url],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            time.sleep(1)
            loaded = measure_visibility(server, sdk_key, manager, args.trials, under_load=True)
        finally:
            load.terminate()
            load.wait()
    finally:
        server.stop()
        log.unlink(missing_ok=True)

    ratios = {}
    if runs:
        names = ("trivial", "single", "trivial-large", "bulk", "bulk-304")
        t, s, tl, b, n = (runs[name] for name in names)
        ratios = {
            "single_vs_trivial_throughput": ratio(s.requests_per_second, t.requests_per_second),
            "single_vs_trivial_p99": ratio(s.p99_ms, t.p99_ms),
            "bulk_vs_trivial_large_throughput": ratio(
                b.requests_per_second, tl.requests_per_second
            ),
            "bulk_304_vs_trivial_throughput": ratio(n.requests_per_second, t.requests_per_second),
            "bulk_304_vs_trivial_p99": ratio(n.p99_ms, t.p99_ms),
        }
    return {
        "flags": flags,
        "bulk_bytes": len(bulk),
        "trivial_large_bytes": len(large),
        "connections": args.connections,
        "duration_s": args.duration,
        "server": f"gunicorn {WORKERS} workers x {THREADS} threads (gthread)",
        "rounds": args.rounds,
        "runs": {k: asdict(v) for k, v in runs.items()},
        "all_runs": {k: [asdict(r) for r in v] for k, v in rounds.items()},
        "ratios": ratios,
        "visibility": [asdict(idle), asdict(loaded)],
    }


_scripts: list[str] = []


def _script_file(scenario: Scenario) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua_script(scenario))
    _scripts.append(script.name)
    return script.name


def report(result: dict[str, Any]) -> str:
    runs, ratios = result["runs"], result["ratios"]
    lines = [
        f"{result['flags']} flags, {result['server']}, {result['connections']} connections, "
        f"{result['duration_s']:g} s per run, median of {result['rounds']} interleaved rounds",
        "",
        f"{'run':<15}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}  workers (CPU share)",
    ]
    for name, run in runs.items():
        share = "/".join(f"{s:.0%}" for s in run["worker_share"])
        lines.append(
            f"{name:<15}{run['requests_per_second']:>9.0f}{run['p50_ms']:>9.2f}"
            f"{run['p99_ms']:>9.2f}  {share}"
        )
    check: Callable[[bool], str] = lambda ok: "ok" if ok else "MISSED"  # noqa: E731
    if ratios:
        lines += [
            "",
            f"single / trivial throughput   {ratios['single_vs_trivial_throughput']:.2f}  "
            f"(target >= 0.8) {check(ratios['single_vs_trivial_throughput'] >= 0.8)}",
            f"single / trivial p99          {ratios['single_vs_trivial_p99']:.2f}  "
            f"(target <= 1.5) {check(ratios['single_vs_trivial_p99'] <= 1.5)}",
            f"bulk / trivial-large          {ratios['bulk_vs_trivial_large_throughput']:.2f}  "
            f"(target >= 1.0) {check(ratios['bulk_vs_trivial_large_throughput'] >= 1.0)}",
            f"304 / trivial throughput      {ratios['bulk_304_vs_trivial_throughput']:.2f}  "
            f"(target: near 1)",
            f"304 / trivial p99             {ratios['bulk_304_vs_trivial_p99']:.2f}",
            "",
            "per round: single/trivial req/s, p99; bulk/trivial-large req/s; 304/trivial req/s",
        ]
        every = result["all_runs"]
        for i in range(result["rounds"]):
            t, s, tl, b, n = (
                every[k][i] for k in ("trivial", "single", "trivial-large", "bulk", "bulk-304")
            )
            per_round = (
                ratio(s["requests_per_second"], t["requests_per_second"]),
                ratio(s["p99_ms"], t["p99_ms"]),
                ratio(b["requests_per_second"], tl["requests_per_second"]),
                ratio(n["requests_per_second"], t["requests_per_second"]),
            )
            lines.append("  round {}: {:.2f}, {:.2f}; {:.2f}; {:.2f}".format(i + 1, *per_round))
    lines.append("")
    for v in result["visibility"]:
        label = "under load" if v["under_load"] else "idle"
        sent, received = v["first_seen_sent_ms"], v["first_seen_received_ms"]
        stale = v["last_stale_sent_ms"]
        lines += [
            f"visible ({label}, {len(stale)} changes, {min(v['answers'])}+ answers each):",
            f"  every request sent later than {max(stale):.1f} ms after the commit got the new "
            f"value (median {statistics.median(stale):.1f} ms) {check(max(stale) <= 100)}",
            f"  first answer with the change: request sent at median "
            f"{statistics.median(sent):.1f} ms, max {max(sent):.1f} ms; answer received at "
            f"median {statistics.median(received):.1f} ms, max {max(received):.1f} ms",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds per measured run")
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds (median); 0: freshness only"
    )
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--flags", type=int, default=1000)
    parser.add_argument("--trials", type=int, default=20, help="changes timed for visibility")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench: needs wrk (apt-get install wrk)")
    try:
        if os.environ.get("DATABASE_URL"):
            result = benchmark(args, os.environ["DATABASE_URL"])
        else:
            with throwaway_postgres() as url:
                result = benchmark(args, url)
    finally:
        for name in _scripts:
            with contextlib.suppress(OSError):
                os.unlink(name)
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
