#!/usr/bin/env python
"""Gate monitor benchmark: one tick over 1,000 live releases and 3.6 million samples.

With 1,000 in-progress releases of 5 gates each (the seeds' five presets: error rate, p95
latency, security violations, cost ratio, complaints per hour) and one sample every 10 s per
gate metric over the last 2 hours (3,600,000 samples, loaded with COPY), on PostgreSQL:

- one monitor tick's wall time (`rollouts.monitor.monitor_tick`, in process: claim, evaluate,
  record, decide, heartbeat), the first (every evaluation kept) and the steady ones (ticks
  10 s apart on the clock the tick is given), beside the single bare SQL aggregate over the
  same 5,000 windows measured in the same run, interleaved; the tick's queries and the time
  of its aggregate query (Django's CaptureQueriesContext) and the aggregate's EXPLAIN;
- metric ingestion throughput through `rollouts.metrics.metric_samples_submit` in process
  beside a bare COPY of the same rows, and over HTTP (`POST /api/v1/metrics`, gunicorn as
  docs/operations.md runs it, one keep-alive client) for context;
- the time from a breaching sample's commit to the committed automatic rollback, when a
  tick starts right after it (add up to one GATE_MONITOR_INTERVAL of waiting for beat).

Usage (from the repository root):

    DATABASE_URL=postgres://app:app@127.0.0.1:27432/bench_monitor \\
        python benchmarks/gate_monitor.py [--releases 1000] [--rounds 5] [--json out.json]

DATABASE_URL names a database of the benchmark's own: it is migrated, and its rollouts
tables are emptied and refilled on every run (the samples are relative to the run's start).
Without it the script starts a throwaway PostgreSQL on a free loopback port and removes it
afterwards. People, flags and the releases timed for the breach go through the services; the
1,000 releases, their stages and gates are bulk_create'd, the samples COPY'd.
"""

# This script runs the programs it names (gunicorn) with arguments it builds.

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]
sys.path.insert(0, str(ROOT))

from benchmarks.flag_evaluation import request, say, start_server, throwaway_postgres  # noqa: E402

HISTORY_SECONDS = 2 * 3600
SAMPLE_EVERY = 10
# The seeds' five triggers as gates: (name, metric, aggregate, comparator, threshold, window,
# on_failure, a function of a random source giving a healthy value).
GATES = (
    ("errors", "error_rate", "avg", ">", 5.0, 300, "rollback", lambda r: r.uniform(0.1, 2.0)),
    ("latency", "latency_ms", "p95", ">", 5000.0, 600, "halve", lambda r: r.uniform(80, 900)),
    ("security", "security_violations", "max", ">", 0.0, 300, "rollback", lambda r: 0.0),
    ("cost", "cost_ratio", "avg", ">", 3.0, 600, "pause", lambda r: r.uniform(0.8, 1.2)),
    ("complaints", "complaints", "sum", ">", 10.0, 3600, "review", lambda r: 0.0),
)
BREACH_TRIALS = 5


# --- Django and the data --------------------------------------------------------------------


def django_up(database_url: str) -> None:
    os.environ.update(
        DATABASE_URL=database_url,
        DJANGO_SETTINGS_MODULE="releasecontrol.settings",
        ALLOW_PLAIN_HTTP="1",
        DEBUG="0",
        SECRET_KEY=os.environ.get("SECRET_KEY") or "bench-" + secrets.token_hex(24),
        ALLOWED_HOSTS="127.0.0.1",
    )
    os.environ.pop("REDIS_URL", None)  # the monitor's tick needs no broker
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def people() -> dict[str, Any]:
    from releasecontrol.models import Environment, User, UserKind
    from releasecontrol.services import role_grant, user_create

    system = User.system()

    def person(username: str, role: str, kind: str = UserKind.HUMAN):
        user = User.objects.filter(username=username).first()
        if user is None:
            user = user_create(
                actor=system, username=username, kind=kind, password=secrets.token_hex(16)
            )
            role_grant(actor=system, user=user, role=role, environments=Environment.objects.all())
        return user

    return {
        "manager": person("bench-monitor-rm", "release_manager"),
        "monitoring": person("bench-monitoring", "agent", UserKind.AGENT),
        "staging": Environment.objects.get(slug="staging"),
    }


def empty_rollouts() -> None:
    """The rollouts tables of this benchmark's own database, emptied (releases and all that
    hangs on them)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE rollouts_release RESTART IDENTITY CASCADE")


def fill(count: int, now: dt.datetime, who: dict[str, Any]) -> dict[str, float]:
    """The releases, stages and gates (bulk_create) and 2 hours of samples (COPY)."""
    from django.db import connection

    from rollouts.models import Gate, Release, ReleaseStatus, Stage

    began = now - dt.timedelta(seconds=HISTORY_SECONDS)
    started = time.monotonic()
    releases = Release.objects.bulk_create(
        Release(
            name=f"bench-monitor-{i:04d}",
            version="1.0.0",
            environment=who["staging"],
            status=ReleaseStatus.IN_PROGRESS,
            current_stage_index=0,
            stage_entered_at=began,
            hold_started_at=began,
            started_at=began,
            requested_by=who["manager"],
            dead_man_seconds=300,
        )
        for i in range(count)
    )
    Stage.objects.bulk_create(
        Stage(release=r, index=0, name="canary", mode="percentage", percentage=5,
              hold_seconds=7 * 24 * 3600)
        for r in releases
    )  # fmt: skip
    Gate.objects.bulk_create(
        (
            Gate(release=r, name=name, metric=metric, aggregate=aggregate, comparator=cmp,
                 threshold=threshold, window_seconds=window, min_samples=3,
                 on_failure=on_failure, no_data="pause")
            for r in releases
            for name, metric, aggregate, cmp, threshold, window, on_failure, _ in GATES
        ),
        batch_size=2000,
    )  # fmt: skip
    rows_made = time.monotonic() - started

    rng = random.Random(7)
    columns = (
        "environment_id, release_id, metric, cohort, value, time, submitted_by_id, received_at"
    )
    started = time.monotonic()
    points = HISTORY_SECONDS // SAMPLE_EVERY
    with connection.cursor() as cursor:
        with cursor.copy(f"COPY rollouts_metricsample ({columns}) FROM STDIN") as copy:
            for release in releases:
                offset = rng.uniform(0, SAMPLE_EVERY)
                for k in range(points):
                    at = began + dt.timedelta(seconds=k * SAMPLE_EVERY + offset)
                    for _, metric, *_rest, healthy in GATES:
                        copy.write_row(
                            (who["staging"].pk, release.pk, metric, "canary", healthy(rng), at,
                             who["monitoring"].pk, at)
                        )  # fmt: skip
        copied = time.monotonic() - started
        cursor.execute("ANALYZE rollouts_metricsample")
        cursor.execute("ANALYZE rollouts_gate")
        cursor.execute("SELECT count(*) FROM rollouts_metricsample")
        samples = cursor.fetchone()[0]
    return {"rows_seconds": rows_made, "copy_seconds": copied, "samples": samples}


# --- One tick beside the bare aggregate --------------------------------------------------

BARE_SQL = """
SELECT g.id, s.*
FROM rollouts_gate g CROSS JOIN LATERAL (
    SELECT count(*), avg(m.value), min(m.value), max(m.value), sum(m.value),
           percentile_cont(0.95) WITHIN GROUP (ORDER BY m.value)
               FILTER (WHERE g.aggregate = 'p95')
    FROM rollouts_metricsample m
    WHERE m.release_id = g.release_id AND m.metric = g.metric AND m.cohort = 'canary'
      AND m.time > %s - make_interval(secs => g.window_seconds) AND m.time <= %s
) s
"""


def bare_aggregate(now: dt.datetime) -> tuple[float, int]:
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(BARE_SQL, [now, now])
        rows = len(cursor.fetchall())
    return time.perf_counter() - started, rows


def one_tick(now: dt.datetime) -> dict[str, Any]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from rollouts.monitor import monitor_tick

    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        report = monitor_tick(now=now)
        wall = time.perf_counter() - started
    timed = [(float(q["time"]), q["sql"]) for q in queries.captured_queries]
    aggregate = max((t for t, sql in timed if "CROSS JOIN LATERAL" in sql), default=0.0)
    return {
        "wall": wall,
        "queries": len(timed),
        "database": sum(t for t, _ in timed),
        "aggregate_query": aggregate,
        "releases": report.releases,
        "gates_evaluated": report.gates_evaluated,
        "evaluations_recorded": report.evaluations_recorded,
        "actions": len(report.actions),
    }


def explain_aggregate(now: dt.datetime) -> str:
    """The gates' own aggregate query, EXPLAIN ANALYZE'd over this tick's windows."""
    from django.db import connection

    from rollouts import aggregates
    from rollouts.gates import push_requests
    from rollouts.models import Gate

    gates = list(Gate.objects.select_related("release__environment"))
    requests = [req for gate in gates for req in push_requests(gate, now=now)]
    params = aggregates._parameters(requests)
    with connection.cursor() as cursor:
        trusted = any(r.untrusted for r in requests)
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + aggregates._sql(trusted=trusted), params)
        return "\n".join(row[0] for row in cursor.fetchall())


def measure_ticks(rounds: int) -> dict[str, Any]:
    from django.utils import timezone

    base = timezone.now()
    first = one_tick(base)
    ticks, bares = [], []
    for i in range(1, rounds + 1):
        now = base + dt.timedelta(seconds=SAMPLE_EVERY * i)  # ticks 10 s apart
        bare, rows = bare_aggregate(now)
        bares.append(bare)
        ticks.append(one_tick(now))
    steady = statistics.median(t["wall"] for t in ticks)
    bare = statistics.median(bares)
    return {
        "first": first,
        "steady": ticks,
        "steady_wall_median": steady,
        "bare_median": bare,
        "bare_rows": rows,
        "ratio": steady / bare,
        "first_ratio": first["wall"] / bare,
        "explain": explain_aggregate(base + dt.timedelta(seconds=SAMPLE_EVERY * rounds)),
    }


# --- Ingestion ------------------------------------------------------------------------------


def ingestion_rows(
    releases: list[int], count: int, now: dt.datetime, staging_slug: str
) -> list[dict[str, Any]]:
    rng = random.Random(11)
    return [
        {
            "environment": staging_slug,
            "release": releases[i % len(releases)],
            "metric": GATES[i % 5][1],
            "value": round(rng.uniform(0, 2), 3),
            "time": now - dt.timedelta(seconds=i % 600),
            "cohort": "canary",
        }
        for i in range(count)
    ]


def measure_ingestion(who: dict[str, Any], count: int, batch: int) -> dict[str, Any]:
    from django.db import connection
    from django.utils import timezone

    from rollouts.metrics import metric_samples_submit
    from rollouts.models import MetricSample, Release

    releases = list(Release.objects.order_by("pk").values_list("pk", flat=True)[:1000])
    rows = ingestion_rows(releases, count, timezone.now(), "staging")
    first_new = MetricSample.objects.order_by("-pk").values_list("pk", flat=True).first() or 0

    started = time.perf_counter()
    for k in range(0, count, batch):
        metric_samples_submit(actor=who["monitoring"], samples=rows[k : k + batch])
    service = time.perf_counter() - started

    columns = (
        "environment_id, release_id, metric, cohort, value, time, submitted_by_id, received_at"
    )
    started = time.perf_counter()
    received = timezone.now()
    with (
        connection.cursor() as cursor,
        cursor.copy(f"COPY rollouts_metricsample ({columns}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(
                (who["staging"].pk, row["release"], row["metric"], row["cohort"],
                 row["value"], row["time"], who["monitoring"].pk, received)
            )  # fmt: skip
    bare = time.perf_counter() - started
    MetricSample.objects.filter(pk__gt=first_new).delete()
    return {
        "rows": count,
        "batch": batch,
        "service_rows_per_second": count / service,
        "copy_rows_per_second": count / bare,
        "ratio": bare / service,
    }


def measure_http(who: dict[str, Any], database_url: str, count: int, batch: int) -> dict:
    from django.utils import timezone

    from releasecontrol.models import User
    from releasecontrol.services import api_token_issue
    from rollouts.models import MetricSample, Release

    token = api_token_issue(actor=User.system(), user=who["monitoring"], name="bench").raw
    releases = list(Release.objects.order_by("pk").values_list("pk", flat=True)[:1000])
    rows = ingestion_rows(releases, count, timezone.now(), "staging")
    first_new = MetricSample.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    env = {**os.environ, "DATABASE_URL": database_url, "ALLOWED_HOSTS": "127.0.0.1"}
    log = Path(tempfile.mkdtemp(prefix="rc-bench-monitor-")) / "gunicorn.log"
    server = start_server(env, log)
    try:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        started = time.perf_counter()
        for k in range(0, count, batch):
            body = json.dumps({"samples": rows[k : k + batch]}, default=str).encode()
            status, _, answer = request(server, "POST", "/api/v1/metrics", body, **headers)
            if status != 202:
                sys.exit(f"bench: POST /api/v1/metrics answered {status}: {answer[:300]!r}")
        elapsed = time.perf_counter() - started
    finally:
        server.stop()
    MetricSample.objects.filter(pk__gt=first_new).delete()
    return {"rows": count, "batch": batch, "rows_per_second": count / elapsed}


# --- From the breaching sample to the committed rollback ------------------------------------


def measure_breach(who: dict[str, Any], trials: int) -> dict[str, Any]:
    from django.utils import timezone

    from flags.services import flag_create
    from rollouts.models import Gate, MetricSample, Release, ReleaseEvent, ReleaseStatus
    from rollouts.monitor import monitor_tick
    from rollouts.services import release_create, release_start

    times, ticks = [], []
    for trial in range(trials):
        key = f"bench-breach-{secrets.token_hex(4)}-{trial}"
        flag = flag_create(actor=who["manager"], key=key, name=key)
        release = release_create(
            actor=who["manager"], name=key, version="1", environment=who["staging"],
            flags=[flag], plan=[{"name": "canary", "percentage": 5, "hold_seconds": 86400}],
            gates=[{"name": "errors", "metric": "error_rate", "aggregate": "max",
                    "comparator": ">", "threshold": 5, "window_seconds": 30, "min_samples": 1,
                    "on_failure": "rollback"}],
            reason="bench",
        )  # fmt: skip
        release = release_start(actor=who["manager"], release=release, reason="bench")
        # As if it started a minute ago with healthy samples, and every gate last evaluated
        # one interval ago: the timed tick is a steady tick of all 5,000 gates plus this one.
        now = timezone.now()
        Release.objects.filter(pk=release.pk).update(
            stage_entered_at=now - dt.timedelta(seconds=60),
            hold_started_at=now - dt.timedelta(seconds=60),
        )
        MetricSample.objects.create(
            environment=who["staging"], release=release, metric="error_rate", value=1.0,
            time=now - dt.timedelta(seconds=20), submitted_by=who["monitoring"],
        )  # fmt: skip
        Gate.objects.update(
            last_evaluated_at=now - dt.timedelta(seconds=SAMPLE_EVERY),
            last_recorded_at=now - dt.timedelta(seconds=30),
        )
        committed = time.perf_counter()
        MetricSample.objects.create(
            environment=who["staging"], release=release, metric="error_rate", value=50.0,
            time=timezone.now(), submitted_by=who["monitoring"],
        )  # fmt: skip
        report = monitor_tick()
        done = time.perf_counter()
        ticks.append(report.duration_seconds)
        status = Release.objects.get(pk=release.pk).status
        if status != ReleaseStatus.ROLLED_BACK:
            sys.exit(f"bench: the breach trial ended {status}, not rolled back: {report}")
        event = ReleaseEvent.objects.get(release=release, kind="rolled_back")
        assert event.automatic
        times.append(done - committed)
    return {
        "trials": trials,
        "seconds": times,
        "median": statistics.median(times),
        "tick_seconds": ticks,
    }


# --- Report ---------------------------------------------------------------------------------


def benchmark(args: argparse.Namespace, database_url: str) -> dict[str, Any]:
    django_up(database_url)
    from django.utils import timezone

    who = people()
    empty_rollouts()
    say(f"loading {args.releases} releases x 5 gates and 2 hours of samples (COPY)...")
    loaded = fill(args.releases, timezone.now(), who)
    say(f"  {loaded['samples']:,} samples in {loaded['copy_seconds']:.0f} s")
    result: dict[str, Any] = {"releases": args.releases, "load": loaded}
    say("monitor ticks beside the bare aggregate...")
    result["tick"] = measure_ticks(args.rounds)
    say("breach to rollback...")
    result["breach"] = measure_breach(who, BREACH_TRIALS)
    say("ingestion in process beside COPY...")
    result["ingestion"] = measure_ingestion(who, args.ingest, args.batch)
    if not args.no_http:
        say("ingestion over HTTP...")
        result["http"] = measure_http(who, database_url, args.ingest // 5, args.batch)
    return result


def report(result: dict[str, Any]) -> str:
    tick = result["tick"]
    first, steady, breach = tick["first"], tick["steady"][-1], result["breach"]
    lines = [
        f"{result['releases']} releases, {result['load']['samples']:,} samples",
        "",
        "| what | wall time | queries | aggregate query | evaluations kept |",
        "|---|---|---|---|---|",
        f"| first tick | {first['wall']:.3f} s | {first['queries']} | "
        f"{first['aggregate_query']:.3f} s | {first['evaluations_recorded']} |",
        f"| steady tick (median of {len(tick['steady'])}) | {tick['steady_wall_median']:.3f} s | "
        f"{steady['queries']} | {steady['aggregate_query']:.3f} s | "
        f"{steady['evaluations_recorded']} |",
        f"| bare aggregate (median) | {tick['bare_median']:.3f} s | 1 | - | - |",
        "",
        f"steady tick / bare aggregate: {tick['ratio']:.2f}x "
        f"(first tick {tick['first_ratio']:.2f}x)",
        f"breach to committed rollback: median {breach['median'] * 1000:.0f} ms over "
        f"{breach['trials']} trials ({', '.join(f'{s * 1000:.0f}' for s in breach['seconds'])} ms)",
    ]
    if "ingestion" in result:
        ing = result["ingestion"]
        lines.append(
            f"ingestion in process: {ing['service_rows_per_second']:,.0f} rows/s; bare COPY "
            f"{ing['copy_rows_per_second']:,.0f} rows/s; ratio {ing['ratio']:.2f}x "
            f"({ing['rows']:,} rows, batches of {ing['batch']})"
        )
    if "http" in result:
        http = result["http"]
        lines.append(
            f"ingestion over HTTP (one keep-alive client): "
            f"{http['rows_per_second']:,.0f} rows/s (batches of {http['batch']})"
        )
    lines += ["", "EXPLAIN ANALYZE of the aggregate query:", tick["explain"]]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--releases", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5, help="steady ticks (median)")
    parser.add_argument("--ingest", type=int, default=100_000, help="rows for ingestion")
    parser.add_argument("--batch", type=int, default=500, help="samples per submitted batch")
    parser.add_argument("--no-http", action="store_true", help="skip ingestion over HTTP")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if os.environ.get("DATABASE_URL"):
        result = benchmark(args, os.environ["DATABASE_URL"])
    else:
        with throwaway_postgres() as url:
            result = benchmark(args, url)
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
