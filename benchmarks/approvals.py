#!/usr/bin/env python
"""Approvals inbox benchmark: the inbox and a request's page over 10,000 requests.

With 10,000 approval requests of 50 decisions and 15 checklist items each (500,000
decisions, 150,000 items), served by gunicorn as docs/operations.md runs it (2 workers x
2 threads, gthread) on PostgreSQL, signed in as a release manager:

- the query count of each page, counted in process with Django's CaptureQueriesContext at
  10,000 requests and again at 100 (the same database with all but the newest 100 deleted
  inside a transaction that is rolled back): it must be the same;
- the server time (gunicorn's own request time, from its access log) p50 / p95 / p99 and
  wrk's latency and throughput of /approvals/ (awaiting my decision, mine, all, all two
  hundred pages deep) and of one request's page, each beside /bench/trivial (a small
  constant JSON object) and /approvals/badge (a signed-in page of one query) measured in
  the same run, interleaved, on the same server.

Before each measured run the script waits until both workers are idle, and after it checks
from /proc/<pid>/stat that both did a similar share of the CPU work; an unbalanced run is
repeated (benchmarks/flag_evaluation.py's helpers).

Usage (from the repository root):

    DATABASE_URL=postgres://app:app@127.0.0.1:27432/bench_approvals \\
        python benchmarks/approvals.py [--rounds 3] [--duration 10] [--json out.json]

DATABASE_URL names a database of the benchmark's own, migrated and filled once (about
20 s), then reused; without it the script starts a throwaway PostgreSQL on a free
loopback port and removes it afterwards. The people (release managers bench-rm-0..4,
developers bench-dev-0..1, agent bench-agent-0) and the flags the requests change are made
through the services; the requests, decisions and checklist items are written directly
(bulk_create and COPY). Needs wrk. Exits 1 when a page's query count differs between 100
and 10,000 requests.
"""

# This script runs the programs it names (gunicorn, wrk) with arguments it builds.
# ruff: noqa: S603, S607

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# This file is named like the app: the repository root must come first on the path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]
sys.path.insert(0, str(ROOT))

from benchmarks.approvals_data import prepare  # noqa: E402
from benchmarks.flag_evaluation import (  # noqa: E402
    ATTEMPTS,
    MIN_WORKER_SHARE,
    THREADS,
    WORKERS,
    Server,
    cpu_ticks,
    request,
    say,
    start_server,
    throwaway_postgres,
    wait_idle,
)

PAGE_REPEATS = 5  # in-process captures per page (the median query time is reported)

# --- Pages and their queries, in process --------------------------------------------------


def pages(manager: Any) -> dict[str, str]:
    """The measured paths: the inbox's views and one request's page."""
    from approvals.models import ApprovalRequest

    newest = ApprovalRequest.objects.order_by("-id").values_list("id", flat=True)
    top = newest[0]
    deep = min(5000, ApprovalRequest.objects.count() * 6 // 10)
    # A pending production request this manager may decide, with a complete checklist: the
    # page computes every choice (go allowed) with 50 decisions and 15 items. Among the
    # newest 100, so that it exists in the 100-request case too.
    candidate = (
        ApprovalRequest.objects.filter(
            pk__gt=top - 100, status="pending", environment__slug="production"
        )
        .exclude(requested_by=manager)
        .exclude(checklist__checked=False)
        .order_by("-id")
        .values_list("id", flat=True)
        .first()
    )
    if candidate is None:
        sys.exit("bench: no pending production request among the newest 100")
    return {
        # The nav's count awaiting the signed-in person, which every page loads.
        "badge": "/approvals/badge",
        "inbox awaiting": "/approvals/",
        "inbox mine": "/approvals/?view=mine",
        "inbox all": "/approvals/?view=all",
        # Two hundred pages of 25 deep (the keyset bound); 60 requests deep at 100.
        "inbox all, deep": f"/approvals/?view=all&before={top - deep}",
        "request page": f"/approvals/{candidate}/",
    }


def capture(client: Any, path: str) -> dict[str, Any]:
    """The queries one GET makes (after one warm-up: the policy's per-minute cache), each
    timed, and the whole request's time in process."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.get(path)
    runs, walls = [], []
    for _ in range(PAGE_REPEATS):
        timed: list[tuple[str, float]] = []

        def timer(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
            started = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                timed.append((sql, (time.perf_counter() - started) * 1000))  # noqa: B023

        started = time.perf_counter()
        with CaptureQueriesContext(connection) as queries, connection.execute_wrapper(timer):
            response = client.get(path)
        walls.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            sys.exit(f"bench: GET {path} answered {response.status_code}")
        if len(timed) != len(queries.captured_queries):
            sys.exit("bench: the query timer and CaptureQueriesContext disagree")
        runs.append(timed)
    counts = {len(r) for r in runs}
    slowest = max(
        range(len(runs[0])), key=lambda i: statistics.median(r[i][1] for r in runs), default=None
    )
    return {
        "queries": len(runs[0]),
        "stable": len(counts) == 1,
        "wall_ms": round(statistics.median(walls), 2),
        "db_ms": round(statistics.median(sum(t for _, t in r) for r in runs), 2),
        "slowest_ms": round(statistics.median(r[slowest][1] for r in runs), 2)
        if slowest is not None
        else 0,
        "slowest_sql": runs[0][slowest][0][:400] if slowest is not None else "",
        "sql": [sql[:200] for sql, _ in runs[0]],
        "rows": response.content.count(b'data-testid="request-link-'),
        "bytes": len(response.content),
    }


def query_counts(manager: Any, paths: dict[str, str], small: int) -> dict[str, Any]:
    """Each page's queries at the full size, then with only the newest `small` requests."""
    from django.db import connection, transaction
    from django.test import Client

    from approvals.models import ApprovalRequest, ChecklistItem, Decision, PostReview

    client = Client(SERVER_NAME="127.0.0.1")
    client.force_login(manager)  # the session row is outside the tables cut below
    full = ApprovalRequest.objects.count()
    result: dict[str, Any] = {"full": full, "small": small, "pages": {}}
    for name, path in paths.items():
        result["pages"][name] = {"full": capture(client, path)}
    # The small case: only the newest `small` requests and what belongs to them, in a
    # transaction that is rolled back. TRUNCATE (transactional in PostgreSQL) and copying
    # the kept rows back makes the tables really small: a DELETE would leave the other
    # rows for every scan to step over.
    tables = [
        (ApprovalRequest._meta.db_table, "id"),
        (ApprovalRequest.editors.through._meta.db_table, "approvalrequest_id"),
        (PostReview._meta.db_table, "request_id"),
        (ChecklistItem._meta.db_table, "request_id"),
        (Decision._meta.db_table, "request_id"),
    ]
    with transaction.atomic():
        bound = ApprovalRequest.objects.order_by("-id").values_list("id", flat=True)[small - 1]
        with connection.cursor() as cursor:
            for n, (table, column) in enumerate(tables):
                cursor.execute(
                    f"CREATE TEMPORARY TABLE bench_keep_{n} ON COMMIT DROP AS "  # noqa: S608
                    f"SELECT * FROM {table} WHERE {column} >= %s",
                    [bound],
                )
            cursor.execute(f"TRUNCATE {', '.join(t for t, _ in tables)} CASCADE")
            for n, (table, _) in enumerate(tables):
                cursor.execute(f"INSERT INTO {table} SELECT * FROM bench_keep_{n}")  # noqa: S608
                cursor.execute(f"ANALYZE {table}")
        if ApprovalRequest.objects.count() != small:
            sys.exit("bench: could not cut the tables down to the small case")
        for name, path in pages(manager).items():
            result["pages"][name]["small"] = capture(client, path)
        transaction.set_rollback(True)
    with connection.cursor() as cursor:
        for table, _ in tables:
            cursor.execute(f"ANALYZE {table}")
    for page in result["pages"].values():
        page["constant"] = page["full"]["queries"] == page["small"]["queries"]
    result["constant"] = all(p["constant"] for p in result["pages"].values())
    result["session_cookie"] = client.cookies["sessionid"].value
    return result


# --- Load ---------------------------------------------------------------------------------

LUA = """
local headers = {{}}
headers["Cookie"] = {cookie}
request = function()
  return wrk.format("GET", {path}, headers)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(95), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""


@dataclass
class Run:
    name: str
    requests_per_second: float
    client_p50_ms: float
    client_p95_ms: float
    client_p99_ms: float
    server_p50_ms: float
    server_p95_ms: float
    server_p99_ms: float
    requests: int
    errors: int
    worker_share: list[float]
    attempts: int


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))]


def server_times(access_log: Path, offset: int, path: str) -> list[float]:
    """gunicorn's request times (ms) of the lines written after `offset` for this path."""
    with access_log.open("rb") as log:
        log.seek(offset)
        lines = log.read().decode().splitlines()
    times = []
    for line in lines:
        status, micros, target = line.split(" ", 2)
        if target.removesuffix("?") == path and status == "200":
            times.append(int(micros) / 1000)
    return times


def load(
    server: Server, access_log: Path, name: str, path: str, cookie: str, args: argparse.Namespace
) -> tuple[Run, list[float]]:
    """One wrk run against one path, with gunicorn's time of each request it made."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(LUA.format(cookie=json.dumps(f"sessionid={cookie}"), path=json.dumps(path)))
    best: tuple[Run, list[float]] | None = None
    try:
        for attempt in range(1, ATTEMPTS + 1):
            wait_idle(server)
            workers = server.workers()
            before = [cpu_ticks(pid) for pid in workers]
            offset = access_log.stat().st_size
            output = subprocess.run(
                ["wrk", "-t", "1", "-c", str(args.connections), "-d", f"{args.duration}s",
                 "--timeout", "10s", "-s", script.name, server.url],
                capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
            used = [cpu_ticks(pid) - b for pid, b in zip(workers, before, strict=True)]
            time.sleep(0.3)  # the last access-log lines
            times = server_times(access_log, offset, path)
            line = next(x for x in output.splitlines() if x.startswith("RESULT "))
            count, micros, p50, p95, p99, errors = (int(v) for v in line.split()[1:])
            share = [u / max(1, sum(used)) for u in used]
            run = Run(
                name=name,
                requests_per_second=round(count / (micros / 1e6), 1),
                client_p50_ms=p50 / 1000,
                client_p95_ms=p95 / 1000,
                client_p99_ms=p99 / 1000,
                server_p50_ms=round(percentile(times, 50), 2),
                server_p95_ms=round(percentile(times, 95), 2),
                server_p99_ms=round(percentile(times, 99), 2),
                requests=count,
                errors=errors + (count - len(times) if len(times) < count else 0),
                worker_share=[round(s, 3) for s in share],
                attempts=attempt,
            )
            say(
                f"  {name:<16} {run.requests_per_second:7.0f} req/s  server p50 "
                f"{run.server_p50_ms:6.2f} p95 {run.server_p95_ms:6.2f} p99 "
                f"{run.server_p99_ms:6.2f} ms  workers {'/'.join(f'{s:.0%}' for s in share)}"
                f"  errors {run.errors}"
            )
            if best is None or min(share) > min(best[0].worker_share):
                best = run, times
            if min(share) >= MIN_WORKER_SHARE:
                return run, times
            say("  unbalanced (one worker took most connections): again")
        assert best is not None
        return best
    finally:
        os.unlink(script.name)


def benchmark(args: argparse.Namespace, database_url: str) -> dict[str, Any]:
    access_log = Path(tempfile.mkstemp(prefix="rc-bench-access-", suffix=".log")[1])
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "benchmarks.bench_settings",
        "DATABASE_URL": database_url,
        "DEBUG": "0",
        "ALLOW_PLAIN_HTTP": "1",
        "SECRET_KEY": os.environ.get("SECRET_KEY") or secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
        # gunicorn's own time per request (microseconds), status and request target.
        "GUNICORN_CMD_ARGS": f"--access-logfile {access_log} "
        "--access-logformat '%(s)s %(D)s %(U)s?%(q)s'",
    }
    for name in ("REDIS_URL", "CELERY_BROKER_URL"):  # the pages need neither
        env.pop(name, None)
    os.environ.clear()
    os.environ.update(env)

    people = prepare(args.requests)
    manager = people["managers"][0]
    paths = pages(manager)
    say("query counts in process, at the full size and at the newest 100 ...")
    queries = query_counts(manager, paths, args.small)
    for name, page in queries["pages"].items():
        say(
            f"  {name:<16} {page['full']['queries']} queries at {queries['full']:,}, "
            f"{page['small']['queries']} at {queries['small']}"
        )
    paths = {"trivial": "/bench/trivial", **paths}
    log = Path(tempfile.mkstemp(prefix="rc-bench-gunicorn-", suffix=".log")[1])
    server = start_server(env, log)
    cookie = queries.pop("session_cookie")
    rounds: dict[str, list[Run]] = {name: [] for name in paths}
    pooled: dict[str, list[float]] = {name: [] for name in paths}
    try:
        for path in paths.values():
            status, _, body = request(server, "GET", path, Cookie=f"sessionid={cookie}")
            if status != 200:
                sys.exit(f"bench: GET {path} answered {status} from gunicorn: {body[:300]!r}")
        say("warming up")
        warm = argparse.Namespace(**{**vars(args), "duration": 2})
        for name, path in paths.items():
            load(server, access_log, name, path, cookie, warm)
        say(f"measuring: {args.rounds} rounds of {args.duration} s, {args.connections} conns")
        for number in range(1, args.rounds + 1):
            say(f"round {number}")
            for name, path in paths.items():
                run, times = load(server, access_log, name, path, cookie, args)
                rounds[name].append(run)
                pooled[name] += times
    finally:
        server.stop()
        log.unlink(missing_ok=True)
        access_log.unlink(missing_ok=True)
    runs = {
        name: sorted(rs, key=lambda r: r.requests_per_second)[len(rs) // 2]
        for name, rs in rounds.items()
    }
    # Server time percentiles over every round's requests (a slow page makes ~200 a run).
    server = {
        name: {
            "requests": len(times),
            **{f"p{p}_ms": round(percentile(times, p), 2) for p in (50, 95, 99)},
        }
        for name, times in pooled.items()
    }
    trivial = server["trivial"]["p95_ms"]
    per_round = {
        name: [
            round(r.server_p95_ms / t.server_p95_ms, 1)
            for r, t in zip(rs, rounds["trivial"], strict=True)
        ]
        for name, rs in rounds.items()
    }
    return {
        "requests": queries["full"],
        "decisions_per_request": 50,
        "items_per_request": 15,
        "server": f"gunicorn {WORKERS} workers x {THREADS} threads (gthread)",
        "connections": args.connections,
        "duration_s": args.duration,
        "rounds": args.rounds,
        "paths": paths,
        "runs": {name: asdict(r) for name, r in runs.items()},
        "server_time": server,
        "p95_vs_trivial": {
            name: round(times["p95_ms"] / trivial, 1) for name, times in server.items()
        },
        "p95_vs_trivial_per_round": per_round,
        "queries": queries,
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "load_average_end": os.getloadavg(),
        },
    }


def report(result: dict[str, Any]) -> str:
    queries = result["queries"]
    small, full = queries["small"], f"{queries['full']:,}"
    lines = [
        f"{result['requests']:,} requests x {result['decisions_per_request']} decisions x "
        f"{result['items_per_request']} checklist items; {result['server']}; "
        f"{result['connections']} connections, {result['duration_s']} s per run, "
        f"{result['rounds']} interleaved rounds (req/s: the median run; server time: every "
        "request of every round)",
        "",
        "| page | req/s | server p50 | p95 | p99 | p95 / trivial | wrk p99 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, run in result["runs"].items():
        times = result["server_time"][name]
        lines.append(
            f"| {name} | {run['requests_per_second']:,.0f} | {times['p50_ms']:.2f} ms | "
            f"{times['p95_ms']:.2f} ms | {times['p99_ms']:.2f} ms | "
            f"{result['p95_vs_trivial'][name]:.1f} | {run['client_p99_ms']:.2f} ms |"
        )
    lines += [
        "",
        f"| in process (median of {PAGE_REPEATS}) | queries at {small} | at {full} | database "
        f"at {small} | at {full} | slowest query at {full} | whole request at {full} |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, page in queries["pages"].items():
        a, b = page["small"], page["full"]
        lines.append(
            f"| {name} | {a['queries']} | {b['queries']} | {a['db_ms']:.1f} ms | "
            f"{b['db_ms']:.1f} ms | {b['slowest_ms']:.1f} ms | {b['wall_ms']:.1f} ms |"
        )
    verdict = "held" if queries["constant"] else "MISSED"
    lines += ["", f"constant query count ({small} vs {full} requests): {verdict}", ""]
    for name, page in queries["pages"].items():
        lines.append(f"slowest query of {name}: {page['full']['slowest_sql'][:160]}")
    lines += ["", "server p95 / trivial per round:"]
    for name, ratios in result["p95_vs_trivial_per_round"].items():
        lines.append(f"  {name:<16} {', '.join(f'{r:.1f}' for r in ratios)}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--small", type=int, default=100, help="the small case's requests")
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (at least 1)")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if args.rounds < 1 or args.small < 2 or args.requests < 2 * args.small:
        parser.error("needs --rounds >= 1 and --requests at least twice --small")
    if shutil.which("wrk") is None:
        sys.exit("bench: needs wrk (apt-get install wrk)")
    if os.environ.get("DATABASE_URL"):
        result = benchmark(args, os.environ["DATABASE_URL"])
    else:
        with throwaway_postgres() as url:
            result = benchmark(args, url)
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
    if not result["queries"]["constant"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
