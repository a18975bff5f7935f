"""The approvals benchmark's data (benchmarks/approvals.py): people and flags through the
services, then requests, checklist items and decisions written directly (bulk_create and
COPY), with valid preview hashes and statuses the models' constraints accept."""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import secrets
import time
from typing import Any

from benchmarks.flag_evaluation import say

MANAGERS = 5
FLAGS = 20
CHUNK = 500


def prepare_people() -> dict[str, Any]:
    """Release managers, developers and an agent, and the flags requests change: through the
    services (idempotent)."""
    from flags.models import Flag
    from flags.services import flag_create
    from releasecontrol.models import Environment, User, UserKind
    from releasecontrol.services import role_grant, user_create

    system = User.system()
    everywhere = list(Environment.objects.all())

    def person(username: str, role: str, kind: str = UserKind.HUMAN) -> User:
        user = User.objects.filter(username=username).first()
        if user is None:
            user = user_create(
                actor=system, username=username, kind=kind, password=secrets.token_hex(16)
            )
            role_grant(actor=system, user=user, role=role, environments=everywhere)
        return user

    managers = [person(f"bench-rm-{n}", "release_manager") for n in range(MANAGERS)]
    requesters = [
        person("bench-dev-0", "developer"),
        person("bench-dev-1", "developer"),
        person("bench-agent-0", "agent", UserKind.AGENT),
    ]
    for n in range(FLAGS):
        key = f"bench-approval-{n:02d}"
        if not Flag.objects.filter(key=key).exists():
            flag_create(actor=managers[0], key=key, name=f"Approval bench flag {n}")
    return {"managers": managers, "requesters": requesters, "environments": everywhere}


# Of every 20 requests: 8 pending, 1 changes requested, 2 approved, 5 executed, 2 rejected,
# 1 expired, 1 cancelled.
STATUS_MIX = (
    ["pending"] * 8
    + ["changes_requested", "approved", "approved"]
    + ["executed"] * 5
    + ["rejected", "rejected", "expired", "cancelled"]
)


def fill(count: int, people: dict[str, Any], seed: int) -> None:
    """Append `count` requests with their checklists and decisions, newest last."""
    from django.db import connection, transaction
    from django.utils import timezone

    from approvals.checklists import DEPLOYMENT, DEPLOYMENT_ITEMS
    from approvals.models import (
        ApprovalRequest,
        ChecklistItem,
        ChecklistTemplate,
        Decision,
        PostReview,
    )
    from approvals.revisions import as_stored, preview_hash_of
    from releasecontrol import requestable

    rng = random.Random(seed)
    managers, requesters = people["managers"], people["requesters"]
    # The measured release manager asks too (the inbox's "Mine"), about 15% of requests.
    askers = [*requesters, managers[0]]
    asker_weights = [30, 30, 25, 15]
    by_slug = {e.slug: e for e in people["environments"]}
    environments = ["production"] * 6 + ["staging"] * 3 + ["development"]
    template = ChecklistTemplate.objects.get(slug=DEPLOYMENT)
    items = DEPLOYMENT_ITEMS[:15]
    previews = {}
    for slug in by_slug:
        for n in range(FLAGS):
            parameters = as_stored(
                requestable.parameters_clean(
                    "flag.state.set",
                    {"flag": f"bench-approval-{n:02d}", "mode": "percentage", "percentage": 25},
                )
            )
            preview = requestable.preview_compute("flag.state.set", by_slug[slug], parameters)
            previews[slug, n] = (parameters, as_stored(preview))
    now = timezone.now()
    item_columns = (
        "request_id", "position", "section", "text", "required", "evidence_required",
        "checked", "checked_by_id", "checked_at", "evidence",
    )  # fmt: skip
    decision_columns = (
        "request_id", "revision", "decider_id", "decision", "comment", "preview_hash",
        "created_at", "void", "voided_at",
    )  # fmt: skip
    started = time.monotonic()
    for offset in range(0, count, CHUNK):
        size = min(CHUNK, count - offset)
        rows, plans = [], []
        for _ in range(size):
            status = STATUS_MIX[rng.randrange(len(STATUS_MIX))]
            slug = environments[rng.randrange(len(environments))]
            requester = rng.choices(askers, asker_weights)[0]
            deciders = [m for m in managers if m.pk != requester.pk]
            last = 1 + (49 // len(deciders))  # the revision of the latest decisions
            edited_after = status in ("pending", "expired", "cancelled")
            revision = last + 1 if edited_after else last
            is_open = status in ("pending", "changes_requested", "approved")
            if is_open:  # recent, with a window ahead (which sets the expiry)
                created = now - dt.timedelta(hours=rng.uniform(1, 48))
                start = now + dt.timedelta(days=rng.uniform(1, 10))
                window = (start, start + dt.timedelta(hours=2))
                expires = window[1]
            else:
                created = now - dt.timedelta(days=rng.uniform(3, 365))
                window = (None, None)
                expires = created + dt.timedelta(hours=72)
            complete = status != "pending" or rng.random() < 0.5
            parameters, preview = previews[slug, rng.randrange(FLAGS)]
            emergency = rng.random() < 0.02
            request = ApprovalRequest(
                environment=by_slug[slug],
                action="flag.state.set",
                parameters=parameters,
                title=f"Bench request: {parameters['flag']} to 25% in {slug}",
                urgency="emergency" if emergency else rng.choice(("routine", "urgent")),
                risk=rng.choice(("low", "medium", "high")),
                impact="A quarter of users get the new behaviour.",
                mitigation="Error-rate gate; on-call watches the rollout.",
                rollback_plan="Set the flag back to 0% from the board (under a minute).",
                window_start=window[0],
                window_end=window[1],
                checklist_template=template,
                status=status,
                revision=revision,
                preview=preview,
                requested_by=requester,
                emergency_confirmed_by=managers[1] if emergency else None,
                created_at=created,
                updated_at=created + dt.timedelta(minutes=60),
                expires_at=expires,
                approved_at=created + dt.timedelta(minutes=55)
                if status in ("approved", "executed")
                else None,
                closed_at=None if is_open else created + dt.timedelta(minutes=70),
                executed_at=created + dt.timedelta(minutes=70) if status == "executed" else None,
                executed_by=managers[1] if status == "executed" else None,
            )
            checklist = [
                ChecklistItem(
                    position=p,
                    section=section,
                    text=text,
                    required=required,
                    evidence_required=evidence,
                    checked=complete or p <= 8,
                    evidence=("n/a" if evidence or p % 3 == 0 else "")
                    if complete or p <= 8
                    else "",
                )
                for p, (section, text, required, evidence) in enumerate(items, 1)
            ]
            request.preview_hash = preview_hash_of(request, checklist)
            rows.append(request)
            plans.append((request, checklist, deciders, last, created))
        with transaction.atomic():
            ApprovalRequest.objects.bulk_create(rows)
            ApprovalRequest.editors.through.objects.bulk_create(
                ApprovalRequest.editors.through(approvalrequest_id=r.pk, user_id=r.requested_by_id)
                for r in rows
            )
            PostReview.objects.bulk_create(
                PostReview(request=r, opened_at=r.executed_at)
                for r in rows
                if r.status == "executed" and r.urgency == "emergency"
            )
            with connection.cursor() as cursor:
                table = ChecklistItem._meta.db_table
                with cursor.copy(f"COPY {table} ({', '.join(item_columns)}) FROM STDIN") as copy:
                    for request, checklist, _, _, created in plans:
                        for item in checklist:
                            copy.write_row(
                                (
                                    request.pk, item.position, item.section, item.text,
                                    item.required, item.evidence_required, item.checked,
                                    request.requested_by_id if item.checked else None,
                                    created + dt.timedelta(minutes=item.position)
                                    if item.checked
                                    else None,
                                    item.evidence,
                                )
                            )  # fmt: skip
                table = Decision._meta.db_table
                sql = f"COPY {table} ({', '.join(decision_columns)}) FROM STDIN"
                with cursor.copy(sql) as copy:
                    for request, _, deciders, last, created in plans:
                        for row in _decisions(request, deciders, last, created):
                            copy.write_row(row)
        say(f"  {offset + size:,} requests ({time.monotonic() - started:.0f} s)")
    with connection.cursor() as cursor:
        for model in (ApprovalRequest, ChecklistItem, Decision):
            cursor.execute(f"VACUUM ANALYZE {model._meta.db_table}")


def _decisions(request: Any, deciders: list[Any], last: int, created: dt.datetime) -> list[tuple]:
    """50 decisions: one per decider per revision; every revision but the latest ends with
    an adjust (sent back, then edited), and gos of earlier revisions are void."""
    rows = []
    for k in range(50):
        revision = 1 + k // len(deciders)
        decider = deciders[k % len(deciders)]
        final_of_revision = k % len(deciders) == len(deciders) - 1 or k == 49
        kind = "go"
        if revision < last and final_of_revision:
            kind = "adjust"  # sent back, then edited: the next revision
        elif revision == last and k == 49:  # the latest decision says what the status is
            kind = {"changes_requested": "adjust", "rejected": "no_go"}.get(request.status, "go")
        at = created + dt.timedelta(seconds=30 * (k + 1))
        void = kind == "go" and revision < request.revision
        if revision == request.revision:
            preview_hash = request.preview_hash
        else:
            preview_hash = hashlib.sha256(f"{request.pk}:{revision}".encode()).hexdigest()
        rows.append(
            (
                request.pk, revision, decider.pk, kind, "Looks right." if kind == "go" else
                "Please adjust the window.", preview_hash, at, void,
                at + dt.timedelta(minutes=1) if void else None,
            )
        )  # fmt: skip
    return rows


def prepare(target: int) -> dict[str, Any]:
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    from approvals.models import ApprovalRequest

    people = prepare_people()
    have = ApprovalRequest.objects.count()
    if have < target:
        say(f"writing {target - have:,} requests (once per database)...")
        fill(target - have, people, seed=have + 11)
    return people
