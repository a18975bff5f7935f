"""Demo deployment history for the run command's embedded default (seed_demo). Idempotent.

Four weeks of the agent's deployments of three services, staging then production, with a
production failure the next version recovered from, a deployment rolled back after it
succeeded, and an emergency fix; then one production deployment registered now through the
real service, awaiting approval, so the approvals inbox shows a pipeline waiting for a go.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import IO, Any

from django.utils import timezone

from releasecontrol.models import Environment, User

from .deployment_import import deployment_history_import
from .deployments import deployment_register
from .models import Deployment

SERVICES = ("checkout-api", "search", "payments")
WAITING_VERSION = "2.6.0"
# (days ago, service, version, what happened in production)
PLAN = [
    (27, "checkout-api", "2.1.0", "succeeded"),
    (25, "search", "5.3.0", "succeeded"),
    (23, "payments", "1.8.0", "succeeded"),
    (20, "checkout-api", "2.2.0", "failed"),
    (19, "checkout-api", "2.2.1", "succeeded"),
    (16, "search", "5.4.0", "succeeded"),
    (13, "payments", "1.9.0", "rolled_back"),
    (12, "payments", "1.9.1", "succeeded"),
    (9, "checkout-api", "2.3.0", "succeeded"),
    (6, "search", "5.5.0", "succeeded"),
    (4, "payments", "1.9.2", "emergency"),
    (2, "checkout-api", "2.5.0", "succeeded"),
]


def _digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _record(
    environment: str, service: str, version: str, outcome: str, created: dt.datetime, **people
) -> dict[str, Any]:
    commit = hashlib.sha1(f"{service}{version}".encode()).hexdigest()[:12]  # noqa: S324
    go = created + dt.timedelta(minutes=20 if environment == "production" else 1)
    started = go + dt.timedelta(minutes=2)
    finished = started + dt.timedelta(minutes=8)
    return {
        "environment": environment,
        "service": service,
        "version": version,
        "commit": commit,
        "commit_time": created - dt.timedelta(hours=5 if outcome != "emergency" else 1),
        "artifact": _digest(f"{service}:{version}"),
        "kind": "emergency" if outcome == "emergency" else "standard",
        "status": outcome if outcome in ("failed", "rolled_back") else "succeeded",
        "created_at": created,
        "go_at": go,
        "started_at": started,
        "finished_at": finished,
        "succeeded_at": None if outcome == "failed" else finished,
        "rolled_back_at": finished + dt.timedelta(minutes=35) if outcome == "rolled_back" else None,
        "smoke_tests": {
            "passed": 12 if outcome != "failed" else 9,
            "failed": 3 * (outcome == "failed"),
        },
        "notes": {
            "failed": "Smoke tests: checkout p95 over budget",
            "rolled_back": "Error rate rose after release; rolled back",
            "emergency": "Hotfix for a card-declined loop",
        }.get(outcome, ""),
        **people,
    }


def seed_deployments(out: IO[str]) -> None:
    agent = User.objects.filter(username="ci-bot").first()
    if agent is None:
        return
    if not Deployment.objects.filter(service__in=SERVICES).exists():
        now = timezone.now().replace(minute=0, second=0, microsecond=0)
        records = []
        for days, service, version, outcome in PLAN:
            day = now - dt.timedelta(days=days, hours=3)
            if outcome != "emergency":
                records.append(
                    _record("staging", service, version, "succeeded", day, requested_by="ci-bot")
                )
            records.append(
                _record(
                    "production",
                    service,
                    version,
                    outcome,
                    day + dt.timedelta(hours=2),
                    requested_by="ci-bot",
                    approved_by=["rita", "admin"] if outcome == "emergency" else ["rita"],
                    executed_by="omar",
                )
            )
        records.append(
            _record(
                "staging",
                "checkout-api",
                WAITING_VERSION,
                "succeeded",
                now - dt.timedelta(days=1),
                requested_by="ci-bot",
            )
        )
        deployment_history_import(actor=User.system(), records=records, reason="seed_demo")
        deployment_register(
            actor=agent,
            environment=Environment.objects.get(slug="production"),
            service="checkout-api",
            version=WAITING_VERSION,
            commit=hashlib.sha1(WAITING_VERSION.encode()).hexdigest()[:12],  # noqa: S324
            commit_time=now - dt.timedelta(days=1, hours=5),
            artifact=_digest(f"checkout-api:{WAITING_VERSION}"),
            notes="Saved cards on the new payment form",
            reason="seed_demo",
        )
    out.write(f"Demo deployments: {Deployment.objects.filter(service__in=SERVICES).count()}\n")
