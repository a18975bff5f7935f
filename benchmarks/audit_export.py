#!/usr/bin/env python
"""Audit trail benchmark at 1,000,000 events on PostgreSQL, all measured in the same run:

- CSV export throughput of `manage.py export_audit --format csv` (rows/s, MB/s, wall time
  including Django's start) beside PostgreSQL's own
  `COPY (SELECT * FROM releasecontrol_auditevent) TO STDOUT WITH (FORMAT csv)` of the same
  rows (psql), both read through a pipe by this script the same way; best of --rounds,
  interleaved. Also JSON Lines, and the iterator path the SQLite default uses, for scale.
- peak RSS of the export process (ru_maxrss from wait4, i.e. VmHWM);
- the explorer's first page (`audit_page`) p50 / p99 with no filter and with the filters
  auditors use (environment + outcome + actor kind, actor, action prefix, target, a day);
- `verify_audit`'s walk of the whole chain (the verification task's code), for scale.

Targets: export at least half of COPY's throughput; peak RSS under 150 MB; first page
under 100 ms.

Usage (from the repository root; the database is the benchmark's own, it is migrated and
filled once, then reused):

    createdb -h 127.0.0.1 -p 27432 -U app bench_audit
    DATABASE_URL=postgres://app:app@127.0.0.1:27432/bench_audit \\
        python benchmarks/audit_export.py [--events 1000000] [--rounds 3] [--json out.json]

The events are generated here with valid chain hashes (sha256 of each, in Python) and
appended by COPY FROM STDIN under the chain lock, so `verify_audit` passes on the result;
generating 1,000,000 takes about a minute, once. --fresh drops and recreates the database
first.
"""

# This script runs the programs it names (psql, manage.py) with arguments it builds.
# ruff: noqa: S603

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import random
import re
import secrets
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PYTHON = sys.executable
READ_BYTES = 1 << 20
PAGE_RUNS = 200
TARGET_RATIO = 0.5
TARGET_RSS_MB = 150
TARGET_PAGE_MS = 100
TARGET_PAGES = ("no filter", "production + denied + agent")


def say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def django_env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(
        DATABASE_URL=database_url,
        DJANGO_SETTINGS_MODULE="releasecontrol.settings",
        DEBUG="0",
        SECRET_KEY=env.get("SECRET_KEY") or "bench-" + secrets.token_urlsafe(40),
        ALLOW_PLAIN_HTTP="1",
        ALLOWED_HOSTS="localhost",
        LOG_LEVEL="WARNING",
    )
    return env


def recreate_database(database_url: str) -> None:
    import psycopg

    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    if not name or name.startswith("test_") or name in ("app", "postgres"):
        sys.exit(f"bench: refusing to drop {name!r}: give the benchmark a database of its own")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    say(f"recreated database {name}")


# --- Data ------------------------------------------------------------------------------------

ENVIRONMENTS = (("production", 40), ("staging", 30), ("development", 25), (None, 5))
KINDS = (("human", 55), ("agent", 25), ("system", 20))
ACTIONS = (
    ("flag.state.set", 60),
    ("flag.update", 10),
    ("flag.create", 5),
    ("flag.state.restore", 5),
    ("sdkkey.issue", 2),
    ("role.grant", 2),
    ("killswitch.engage", 1),
    ("killswitch.release", 1),
    ("audit.export", 1),
)
MODES = ("off", "shadow", "allowlist", "percentage", "full")


def weighted(choices: tuple[tuple[Any, int], ...]) -> list[Any]:
    return [value for value, weight in choices for _ in range(weight)]


@dataclass
class Actors:
    by_kind: dict[str, list[tuple[int, str]]]


def prepare_actors() -> Actors:
    from releasecontrol.models import User, UserKind
    from releasecontrol.services import user_create

    system = User.system()
    by_kind: dict[str, list[tuple[int, str]]] = {"human": [], "agent": [], "system": []}
    for kind, count in (("human", 12), ("agent", 4)):
        for n in range(count):
            name = f"bench-{kind}-{n}"
            user = User.objects.filter(username=name).first() or user_create(
                actor=system,
                username=name,
                kind=UserKind.AGENT if kind == "agent" else UserKind.HUMAN,
                password=secrets.token_hex(16),
            )
            by_kind[kind].append((user.pk, user.username))
    by_kind["system"].append((system.pk, system.username))
    return Actors(by_kind)


def generate(count: int, actors: Actors, seed: int = 7) -> None:
    """Append `count` events with valid chain hashes, oldest first, spread over a year."""
    from django.db import connection, transaction

    from releasecontrol.audit import CHAIN_LOCK_KEY, GENESIS_HASH, canonical_json, format_time
    from releasecontrol.models import AuditEvent

    rng = random.Random(seed)
    environments = weighted(ENVIRONMENTS)
    kinds = weighted(KINDS)
    actions = weighted(ACTIONS)
    columns = (
        "created_at", "actor_id", "actor_kind", "actor_name", "action", "outcome",
        "environment", "target_type", "target_id", "target_name", "before", "after", "reason",
        "request_id", "client_ip", "prev_hash", "hash",
    )  # fmt: skip
    started = time.monotonic()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHAIN_LOCK_KEY])
        prev = AuditEvent.objects.order_by("-id").values_list("hash", flat=True).first()
        prev = prev or GENESIS_HASH
        now = dt.datetime.now(dt.UTC)
        start = now - dt.timedelta(days=365)
        step = dt.timedelta(days=365) / count
        sql = f"COPY releasecontrol_auditevent ({', '.join(columns)}) FROM STDIN"
        with cursor.copy(sql) as copy:
            for n in range(count):
                created_at = start + step * n
                kind = kinds[rng.randrange(len(kinds))]
                actor_id, actor_name = rng.choice(actors.by_kind[kind])
                environment = environments[rng.randrange(len(environments))]
                action = actions[rng.randrange(len(actions))]
                denied = rng.random() < (
                    0.4 if kind == "agent" and environment == "production" else 0.01
                )
                flag = rng.randrange(2000)
                version = rng.randrange(1, 40)
                mode = MODES[rng.randrange(5)]
                state_before = {
                    "mode": mode,
                    "percentage": rng.randrange(101) if mode == "percentage" else 0,
                    "allowlist": [f"user-{rng.randrange(10_000)}" for _ in range(rng.randrange(4))],
                    "version": version,
                }
                state_after = {
                    **state_before,
                    "mode": MODES[rng.randrange(5)],
                    "version": version + 1,
                }
                if denied:
                    after: Any = {
                        "refused": "no role that may change flags",
                        "requested": state_after,
                    }
                else:
                    after = state_after
                fields = {
                    "created_at": format_time(created_at),
                    "actor_id": actor_id,
                    "actor_kind": kind,
                    "actor_name": actor_name,
                    "action": action,
                    "outcome": "denied" if denied else "ok",
                    "environment": environment,
                    "target_type": "flag",
                    "target_id": str(flag),
                    "target_name": f"bench-flag-{flag:04d}",
                    "before": state_before,
                    "after": after,
                    "reason": rng.choice(("", "canary", "rolling out to 25 %", "error spike")),
                    "request_id": uuid.UUID(int=rng.getrandbits(128)).hex,
                    "client_ip": f"10.0.{rng.randrange(256)}.{rng.randrange(1, 255)}",
                }
                digest = hashlib.sha256(prev.encode() + canonical_json(fields)).hexdigest()
                copy.write_row(
                    (
                        created_at, actor_id, kind, actor_name, action, fields["outcome"],
                        environment, "flag", fields["target_id"], fields["target_name"],
                        json.dumps(state_before), json.dumps(after), fields["reason"],
                        fields["request_id"], fields["client_ip"], prev, digest,
                    )
                )  # fmt: skip
                prev = digest
                if n and n % 200_000 == 0:
                    say(f"  {n:,} events ({time.monotonic() - started:.0f} s)")
    say(f"  {count:,} events appended in {time.monotonic() - started:.0f} s")
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE releasecontrol_auditevent")


def prepare(database_url: str, events: int) -> int:
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    from releasecontrol.models import AuditEvent

    actors = prepare_actors()
    have = AuditEvent.objects.count()
    if have < events:
        say(f"generating {events - have:,} events (once per database)...")
        generate(events - have, actors)
    return AuditEvent.objects.count()


# --- Measurements ------------------------------------------------------------------------------


@dataclass
class Stream:
    seconds: float
    first_byte: float
    bytes: int
    max_rss_mb: float
    stderr: str

    def rows_per_second(self, rows: int) -> float:
        return rows / self.seconds

    def mb_per_second(self) -> float:
        return self.bytes / self.seconds / 1e6


def vm_hwm_mb(pid: int) -> float | None:
    """The process's own peak RSS (VmHWM: of its memory since exec, unlike ru_maxrss, which
    on Linux also counts the forked copy of this big parent before exec)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


# A Python command run through this wrapper writes its own VmHWM to stderr as it exits.
HWM_MARK = "bench-vmhwm-kb:"
HWM_WRAPPER = (
    "import atexit, runpy, sys\n"
    "def hwm():\n"
    "    for line in open('/proc/self/status'):\n"
    "        if line.startswith('VmHWM:'):\n"
    f"            sys.stderr.write('\\n{HWM_MARK}' + line.split()[1] + '\\n')\n"
    "atexit.register(hwm)\n"
    "sys.argv = sys.argv[1:]\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
)


def stream(command: list[str], env: dict[str, str]) -> Stream:
    """Run a command, read its stdout through a pipe (discarding it), time it, and take its
    peak RSS (VmHWM: reported by the wrapper for Python, polled for others)."""
    if command[0] == PYTHON:
        command = [PYTHON, "-c", HWM_WRAPPER, *command[1:]]
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdout is not None and process.stderr is not None
    total = 0
    first = None
    peak = 0.0
    while block := process.stdout.read1(READ_BYTES):
        if first is None:
            first = time.perf_counter() - started
        total += len(block)
        peak = max(peak, vm_hwm_mb(process.pid) or 0.0)
    seconds = time.perf_counter() - started
    stderr = process.stderr.read().decode()
    process.wait()
    if process.returncode != 0:
        sys.exit(f"bench: {' '.join(command)} failed ({process.returncode}): {stderr}")
    for line in stderr.splitlines():
        if line.startswith(HWM_MARK):
            peak = int(line[len(HWM_MARK) :]) / 1024
    return Stream(seconds, first or seconds, total, peak, stderr)


def pg_copy(database_url: str) -> Stream:
    sql = "COPY (SELECT * FROM releasecontrol_auditevent) TO STDOUT WITH (FORMAT csv)"
    return stream(["psql", database_url, "-X", "-q", "-c", sql], dict(os.environ))


def our_export(database_url: str, fmt: str) -> Stream:
    return stream([PYTHON, "manage.py", "export_audit", "--format", fmt], django_env(database_url))


def iterator_export(database_url: str) -> Stream:
    return stream(
        [PYTHON, "benchmarks/audit_export.py", "--iterator-export"], django_env(database_url)
    )


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def first_pages() -> dict[str, dict[str, Any]]:
    from django.db import connection, reset_queries

    from releasecontrol.audit.selectors import AuditFilter, audit_events, audit_page
    from releasecontrol.models import AuditEvent

    newest = AuditEvent.objects.order_by("-id").values("created_at", "target_type", "target_id")[0]
    cases = {
        # The two the target names:
        "no filter": AuditFilter(),
        "production + denied + agent": AuditFilter(
            environment="production", outcome="denied", actor_kind="agent"
        ),
        # And the explorer's other filters, common and rare values:
        "staging + ok + human": AuditFilter(
            environment="staging", outcome="ok", actor_kind="human"
        ),
        "development + denied + system (rare)": AuditFilter(
            environment="development", outcome="denied", actor_kind="system"
        ),
        "denied (every environment)": AuditFilter(outcome="denied"),
        "denied + system (every environment)": AuditFilter(outcome="denied", actor_kind="system"),
        "actor bench-agent-1": AuditFilter(actor="bench-agent-1"),
        "actor with no events": AuditFilter(actor="nobody"),
        "action prefix flag.": AuditFilter(action="flag."),
        "one flag (target)": AuditFilter(
            target_type=newest["target_type"], target_id=newest["target_id"]
        ),
        "the last day": AuditFilter(since=newest["created_at"] - dt.timedelta(days=1)),
        "a day 6 months ago": AuditFilter(
            since=newest["created_at"] - dt.timedelta(days=183),
            until=newest["created_at"] - dt.timedelta(days=182),
        ),
    }
    results = {}
    for label, audit_filter in cases.items():
        for _ in range(5):  # warm the cache and the connection
            audit_page(audit_filter)
        timings = []
        rows = 0
        for _ in range(PAGE_RUNS):
            started = time.perf_counter()
            page = audit_page(audit_filter)
            timings.append((time.perf_counter() - started) * 1000)
            rows = len(page.events)
        sql, params = audit_events(audit_filter)[:51].query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN " + sql, params)
            plan = [line for (line,) in cursor.fetchall()]
        reset_queries()
        results[label] = {
            "rows": rows,
            "p50_ms": round(statistics.median(timings), 2),
            "p99_ms": round(percentile(timings, 99), 2),
            "plan": plan[:3],
        }
        page = results[label]
        say(f"  first page, {label}: p50 {page['p50_ms']} ms, p99 {page['p99_ms']} ms")
    return results


def verify_walk(database_url: str) -> dict[str, Any]:
    run = stream([PYTHON, "manage.py", "verify_audit"], django_env(database_url))
    return {"seconds": round(run.seconds, 1), "max_rss_mb": round(run.max_rss_mb, 1)}


def benchmark(args: argparse.Namespace, database_url: str) -> dict[str, Any]:
    os.environ.update(django_env(database_url))
    if args.fresh:
        recreate_database(database_url)
    rows = prepare(database_url, args.events)
    say(f"{rows:,} events in the table")

    copies, csvs = [], []
    for n in range(args.rounds):  # interleaved, so both see the same cache and machine state
        copies.append(pg_copy(database_url))
        csvs.append(our_export(database_url, "csv"))
        say(
            f"  round {n + 1}: COPY {copies[-1].seconds:.2f} s, export_audit csv "
            f"{csvs[-1].seconds:.2f} s ({csvs[-1].max_rss_mb:.0f} MB peak)"
        )
    copy = min(copies, key=lambda s: s.seconds)
    ours = min(csvs, key=lambda s: s.seconds)
    # Each export records itself (audit.export) after the events it covers: the trail grows by
    # one per export, and the export covers what was there when it began.
    exported = re.search(r"(\d+) events exported\.", ours.stderr)
    assert exported and rows <= int(exported.group(1)) < rows + 2 * args.rounds, ours.stderr
    jsonl = our_export(database_url, "jsonl")
    say(f"  export_audit jsonl {jsonl.seconds:.2f} s")
    iterator = iterator_export(database_url) if not args.skip_iterator else None
    if iterator:
        say(f"  iterator path csv {iterator.seconds:.2f} s")

    import django

    django.setup()
    pages = first_pages()
    verify = verify_walk(database_url) if not args.skip_verify else None
    if verify:
        say(f"  verify_audit {verify['seconds']} s")

    def figures(run: Stream) -> dict[str, Any]:
        return {
            "seconds": round(run.seconds, 2),
            "first_byte_s": round(run.first_byte, 2),
            "rows_per_s": round(run.rows_per_second(rows)),
            "mb_per_s": round(run.mb_per_second(), 1),
            "bytes": run.bytes,
            "max_rss_mb": round(run.max_rss_mb, 1),
        }

    return {
        "events": rows,
        "rounds": args.rounds,
        "pg_copy": figures(copy),
        "export_csv": figures(ours),
        "export_jsonl": figures(jsonl),
        "iterator_csv": figures(iterator) if iterator else None,
        "ratio_rows": round(ours.rows_per_second(rows) / copy.rows_per_second(rows), 2),
        "first_page": pages,
        "verify_audit": verify,
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
    }


def check(ok: bool) -> str:
    return "OK" if ok else "MISSED"


def report(result: dict[str, Any]) -> str:
    copy, ours, jsonl = result["pg_copy"], result["export_csv"], result["export_jsonl"]
    lines = [
        f"Audit trail: {result['events']:,} events (best of {result['rounds']} rounds)",
        "",
        "| export | wall time | rows/s | MB/s | peak RSS |",
        "|---|---|---|---|---|",
        f"| PostgreSQL `COPY (SELECT * ...) TO STDOUT` (psql) | {copy['seconds']} s | "
        f"{copy['rows_per_s']:,} | {copy['mb_per_s']} | {copy['max_rss_mb']} MB |",
        f"| `export_audit --format csv` | {ours['seconds']} s | {ours['rows_per_s']:,} | "
        f"{ours['mb_per_s']} | {ours['max_rss_mb']} MB |",
        f"| `export_audit --format jsonl` | {jsonl['seconds']} s | {jsonl['rows_per_s']:,} | "
        f"{jsonl['mb_per_s']} | {jsonl['max_rss_mb']} MB |",
    ]
    if result["iterator_csv"]:
        it = result["iterator_csv"]
        lines.append(
            f"| iterator path (SQLite's), csv | {it['seconds']} s | {it['rows_per_s']:,} | "
            f"{it['mb_per_s']} | {it['max_rss_mb']} MB |"
        )
    lines += [
        "",
        f"CSV export / COPY throughput: {result['ratio_rows']:.2f} "
        f"(target >= {TARGET_RATIO}) {check(result['ratio_rows'] >= TARGET_RATIO)}",
        f"Peak RSS of the export: {ours['max_rss_mb']} MB csv, {jsonl['max_rss_mb']} MB jsonl "
        f"(target < {TARGET_RSS_MB}) "
        f"{check(max(ours['max_rss_mb'], jsonl['max_rss_mb']) < TARGET_RSS_MB)}",
        "",
        "| explorer first page (`audit_page`, 50 events) | rows | p50 | p99 | "
        f"< {TARGET_PAGE_MS} ms |",
        "|---|---|---|---|---|",
    ]
    for label, page in result["first_page"].items():
        lines.append(
            f"| {label} | {page['rows']} | {page['p50_ms']} ms | {page['p99_ms']} ms | "
            f"{check(page['p99_ms'] < TARGET_PAGE_MS)} |"
        )
    required = [result["first_page"][label] for label in TARGET_PAGES]
    fast = check(all(page["p99_ms"] < TARGET_PAGE_MS for page in required))
    lines += [
        "",
        f"First page p99, {' and '.join(TARGET_PAGES)}: target < {TARGET_PAGE_MS} ms {fast}",
    ]
    if result["verify_audit"]:
        verify = result["verify_audit"]
        lines.append(
            f"verify_audit (the whole chain): {verify['seconds']} s, "
            f"peak RSS {verify['max_rss_mb']} MB"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fresh", action="store_true", help="drop and recreate the database")
    parser.add_argument("--skip-iterator", action="store_true")
    parser.add_argument("--skip-verify", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--iterator-export", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.iterator_export:  # the benchmark's own subprocess: the iterator path to stdout
        import django

        django.setup()
        from releasecontrol.audit.export import audit_export

        audit_export(fmt="csv", method="iterator").write_to(sys.stdout.buffer)
        return
    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url.startswith("postgres"):
        sys.exit("bench: set DATABASE_URL to a PostgreSQL database of the benchmark's own")
    result = benchmark(args, database_url)
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
