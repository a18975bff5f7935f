#!/usr/bin/env python
"""DORA figures over 100,000 deployments: the server's time beside the bare aggregate SQL.

With 100,000 deployments over a year (8 services, three environments, 8% failed, 4% rolled
back, 2% linked to releases of which a quarter a gate rolled back, 24 emergency rollbacks),
on PostgreSQL, in one process, interleaved over several rounds:

- `bare SQL`: one aggregate over the same rows with no rollback conditions (counts and the
  two lead-time percentiles, straight from the table): the floor any implementation pays;
- `dora_figures`: rollouts/dora.py, one statement (every figure, its counts and the weekly
  trends, over each deployment's facts: gate and emergency rollbacks, next success), as the
  page and the API call it;
- `GET /api/v1/dora`: the whole request through Django (token check, the statement, the
  schema), timed around the test client's call: the server's time without the network.

Each for the last 30 and the last 365 days in production, and for one service over 30 days.
Reports the median and p95 of each in milliseconds and the ratio to the bare SQL.

Usage (from the repository root):

    DATABASE_URL=postgres://app:app@127.0.0.1:27432/bench_dora \\
        python benchmarks/dora.py [--deployments 100000] [--rounds 5] [--json out.json]

DATABASE_URL names a database of the benchmark's own, migrated and filled once (about
20 s), then reused; without it the script starts a throwaway PostgreSQL on a free loopback
port and removes it afterwards. The account is made through the services; the history is
written directly (bulk_create), as an import would.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]
sys.path.insert(0, str(ROOT))

from benchmarks.flag_evaluation import say, throwaway_postgres  # noqa: E402

SERVICES = [f"bench-svc-{i}" for i in range(8)]
ITERATIONS = 10  # timed calls per case and round


def fill(count: int) -> None:
    import datetime as dt

    from django.utils import timezone

    from releasecontrol.models import Environment, User
    from releasecontrol.services import user_create
    from rollouts.models import Deployment, Release, ReleaseEvent, Rollback

    existing = Deployment.objects.filter(service__in=SERVICES).count()
    if existing >= count:
        return
    say(f"writing {count - existing} deployments (once per database)...")
    started = time.monotonic()
    rng = random.Random(20261201)
    system = User.system()
    agent = User.objects.filter(username="bench-agent").first() or user_create(
        actor=system, username="bench-agent", kind="agent", password=secrets.token_hex(16)
    )
    environments = list(Environment.objects.order_by("position"))
    weights = [0.1, 0.4, 0.5]
    now = timezone.now()
    production = environments[-1]
    releases = Release.objects.bulk_create(
        Release(name=f"bench-release-{i}", environment=production, requested_by=agent)
        for i in range(500)
    )
    ReleaseEvent.objects.bulk_create(
        ReleaseEvent(
            release=r,
            kind="rolled_back",
            automatic=True,
            actor=system,
            at=now - dt.timedelta(days=rng.uniform(0, 365)),
        )
        for r in releases[::4]
    )
    Rollback.objects.bulk_create(
        Rollback(
            environment=production,
            actor=system,
            reason="bench",
            created_at=now - dt.timedelta(days=rng.uniform(0, 365)),
        )
        for _ in range(24)
    )
    batch = []
    for i in range(existing, count):
        created = now - dt.timedelta(seconds=rng.uniform(0, 365 * 86400))
        environment = rng.choices(environments, weights)[0]
        roll = rng.random()
        status = (
            "failed"
            if roll < 0.08
            else "rolled_back"
            if roll < 0.12
            else "cancelled"
            if roll < 0.14
            else "succeeded"
        )
        finished = created + dt.timedelta(minutes=rng.uniform(5, 90))
        ran = status != "cancelled"
        batch.append(
            Deployment(
                environment=environment,
                service=rng.choice(SERVICES),
                version=f"1.{i // 1000}.{i % 1000}",
                commit=f"{i:07x}",
                commit_time=created - dt.timedelta(hours=rng.uniform(0.2, 72)),
                artifact="sha256:" + f"{i:064x}",
                status=status,
                requested_by=agent,
                created_at=created,
                updated_at=finished,
                go_at=created if ran else None,
                started_at=created if ran else None,
                finished_at=finished if ran else None,
                succeeded_at=finished if status in ("succeeded", "rolled_back") else None,
                rolled_back_at=finished + dt.timedelta(minutes=30)
                if status == "rolled_back"
                else None,
                release=rng.choice(releases) if environment == production and roll > 0.98 else None,
            )
        )
        if len(batch) == 5000:
            Deployment.objects.bulk_create(batch)
            batch = []
    Deployment.objects.bulk_create(batch)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE rollouts_deployment")
    say(f"  done in {time.monotonic() - started:.0f} s")


BARE_SQL = """
SELECT count(*) FILTER (WHERE succeeded_at >= %(start)s AND succeeded_at <= %(end)s),
       count(*) FILTER (WHERE finished_at >= %(start)s AND finished_at <= %(end)s),
       count(*) FILTER (WHERE finished_at >= %(start)s AND finished_at <= %(end)s
                        AND status IN ('failed', 'rolled_back')),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM succeeded_at - commit_time))
           FILTER (WHERE succeeded_at >= %(start)s AND succeeded_at <= %(end)s),
       percentile_cont(0.9) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM succeeded_at - commit_time))
           FILTER (WHERE succeeded_at >= %(start)s AND succeeded_at <= %(end)s)
FROM rollouts_deployment
WHERE environment_id = %(environment)s {service}
  AND (succeeded_at BETWEEN %(start)s AND %(end)s OR finished_at BETWEEN %(start)s AND %(end)s)
"""


def timed(call: Any) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    import django

    django.setup()
    import datetime as dt

    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    call_command("migrate", verbosity=0)
    fill(args.deployments)

    from releasecontrol.models import Environment, User
    from releasecontrol.services import api_token_issue
    from rollouts.dora import dora_figures
    from rollouts.models import Deployment

    production = Environment.objects.get(slug="production")
    agent = User.objects.get(username="bench-agent")
    token = api_token_issue(actor=User.system(), user=agent, name="bench").raw
    client = Client(headers={"Authorization": f"Bearer {token}"}, SERVER_NAME="127.0.0.1")
    cases = [
        ("production, 30 days", 30, None),
        ("production, 365 days", 365, None),
        ("production, one service, 30 days", 30, SERVICES[0]),
    ]
    samples: dict[tuple[str, str], list[float]] = {}

    def bare(days: int, service: str | None) -> None:
        end = timezone.now()
        params = {"start": end - dt.timedelta(days=days), "end": end, "environment": production.pk}
        sql = BARE_SQL.format(service="AND service = %(service)s" if service else "")
        with connection.cursor() as cursor:
            cursor.execute(sql, {**params, "service": service})
            cursor.fetchall()

    def api(days: int, service: str | None) -> None:
        query = f"environment=production&days={days}" + (f"&service={service}" if service else "")
        response = client.get(f"/api/v1/dora?{query}")
        assert response.status_code == 200, response.content

    ways = {
        "bare SQL": bare,
        "dora_figures": lambda d, s: dora_figures(environment=production, service=s, days=d),
        "GET /api/v1/dora": api,
    }
    for _round in range(args.rounds):
        for name, days, service in cases:
            for way, call in ways.items():
                call(days, service)  # warm
                samples.setdefault((name, way), []).extend(
                    timed(lambda c=call, d=days, s=service: c(d, s)) for _ in range(ITERATIONS)
                )
    figures = dora_figures(environment=production, days=365)
    results: dict[str, Any] = {
        "deployments": Deployment.objects.count(),
        "rounds": args.rounds,
        "calls_per_case": args.rounds * ITERATIONS,
        "figures_365_days": {
            "frequency_per_day": figures.deployment_frequency_per_day,
            "counts": figures.counts,
        },
        "cases": {},
    }
    for name, _days, _service in cases:
        row = {}
        floor = statistics.median(samples[(name, "bare SQL")])
        for way in ways:
            values = sorted(samples[(name, way)])
            median = statistics.median(values)
            row[way] = {
                "median_ms": round(median, 2),
                "p95_ms": round(values[int(0.95 * (len(values) - 1))], 2),
                "x_bare": round(median / floor, 2),
            }
        results["cases"][name] = row
    return results


def report(result: dict[str, Any]) -> str:
    lines = [
        f"DORA over {result['deployments']:,} deployments ({result['calls_per_case']} calls "
        "per case, interleaved)",
        "",
        "| case | bare SQL ms (p50 / p95) | dora_figures ms | GET /api/v1/dora ms | API x bare |",
        "|---|---|---|---|---|",
    ]
    for name, row in result["cases"].items():
        cell = {w: f"{v['median_ms']} / {v['p95_ms']}" for w, v in row.items()}
        lines.append(
            f"| {name} | {cell['bare SQL']} | {cell['dora_figures']} | "
            f"{cell['GET /api/v1/dora']} | {row['GET /api/v1/dora']['x_bare']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deployments", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.bench_settings")
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
    os.environ.setdefault("ALLOW_PLAIN_HTTP", "1")
    os.environ.setdefault("ALLOWED_HOSTS", "127.0.0.1")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    for name in ("REDIS_URL", "CELERY_BROKER_URL"):
        os.environ.pop(name, None)
    if os.environ.get("DATABASE_URL"):
        result = benchmark(args)
    else:
        with throwaway_postgres() as url:
            os.environ["DATABASE_URL"] = url
            result = benchmark(args)
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
