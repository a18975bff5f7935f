"""Importing past deployments (from the tool a team used before, or the demo data), so the
history and the DORA figures start with what already happened. Only finished deployments
are imported, with their own times; one audit event records the import."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from releasecontrol.audit import Target, audit_record
from releasecontrol.models import Environment, User
from releasecontrol.policy import authorize

from . import actions
from .deployment_input import clean_registration, clean_smoke_tests
from .deployment_status import CLOSED, FINISHED
from .models import Deployment, DeploymentEvent

TIMES = ("go_at", "started_at", "finished_at", "succeeded_at", "rolled_back_at")


def _one(record: Mapping[str, Any], index: int, now: dt.datetime) -> tuple[Deployment, list]:
    where = f"records[{index}]"
    try:
        environment = Environment.objects.get(slug=record.get("environment"))
        requested_by = User.objects.get(username=record.get("requested_by"))
        executed_by = (
            User.objects.get(username=record["executed_by"]) if record.get("executed_by") else None
        )
    except (Environment.DoesNotExist, User.DoesNotExist):
        raise ValidationError({where: "names an unknown environment or account"}) from None
    status = record.get("status")
    if status not in (*FINISHED, *CLOSED):
        raise ValidationError({f"{where}.status": "only finished deployments are imported"})
    created = record.get("created_at")
    fields = clean_registration(
        environment=environment,
        service=record.get("service"),
        version=record.get("version"),
        commit=record.get("commit"),
        commit_time=record.get("commit_time"),
        artifact=record.get("artifact"),
        kind=record.get("kind", "standard"),
        release=None,
        notes=record.get("notes", ""),
        now=created if isinstance(created, dt.datetime) else now,
    )
    times = {name: record.get(name) for name in TIMES}
    moments = [created, *[t for t in times.values() if t is not None]]
    if not all(isinstance(t, dt.datetime) and timezone.is_aware(t) for t in moments):
        raise ValidationError({where: "times are datetimes with their zone"})
    if max(moments) > now or min(moments) < created:
        raise ValidationError({where: "times are in the past, none before created_at"})
    smoke = clean_smoke_tests(record.get("smoke_tests"))
    deployment = Deployment(
        environment=environment,
        requested_by=requested_by,
        executed_by=executed_by,
        approved_by=list(record.get("approved_by") or []),
        status=status,
        created_at=created,
        updated_at=max(moments),
        smoke_passed=smoke["passed"] if smoke else None,
        smoke_failed=smoke["failed"] if smoke else None,
        **fields,
        **times,
    )
    events = [("registered", created, requested_by, None)]
    if times["go_at"]:
        events.append(("go", times["go_at"], executed_by or requested_by, None))
    if times["started_at"]:
        events.append(("started", times["started_at"], requested_by, None))
    if times["finished_at"]:
        outcome = "succeeded" if times["succeeded_at"] else "failed"
        events.append((outcome, times["finished_at"], requested_by, smoke))
    if times["rolled_back_at"]:
        events.append(("rolled_back", times["rolled_back_at"], requested_by, None))
    if status in CLOSED:
        events.append((status, max(moments), requested_by, None))
    return deployment, events


@transaction.atomic
def deployment_history_import(
    *, actor: User, records: Iterable[Mapping[str, Any]], reason: str = ""
) -> list[Deployment]:
    """Past, finished deployments with their own times (an operator's, or the demo's)."""
    authorize(actor, actions.DEPLOYMENT_IMPORT, target=Target("deployment", "", "import"))
    now = timezone.now()
    made = [_one(record, i, now) for i, record in enumerate(records)]
    deployments = Deployment.objects.bulk_create([d for d, _ in made])
    DeploymentEvent.objects.bulk_create(
        DeploymentEvent(deployment=d, at=at, event=event, actor=who, smoke_tests=smoke)
        for d, (_, events) in zip(deployments, made, strict=True)
        for event, at, who, smoke in events
    )
    audit_record(
        actor=actor,
        action=actions.DEPLOYMENT_IMPORT.name,
        target=Target("deployment", "", "import"),
        after={
            "imported": len(deployments),
            "ids": [d.pk for d in deployments],
            "statuses": sorted({d.status for d in deployments}),
        },
        reason=reason,
    )
    return deployments
