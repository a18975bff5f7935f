"""The releases and metrics API (a django-ninja Router on the site's /api/v1/).

Handlers are thin: the schemas (rollouts/schemas.py) check the JSON shape, the services
(rollouts/services.py, rollouts/metrics.py) validate, authorize, change and audit;
releasecontrol.api's exception handlers turn their exceptions into {"error", "detail"}
answers (a 409 `approval_required` names the request to make).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any

from django.core.exceptions import ValidationError
from django.http import HttpRequest
from ninja import Path, Query, Router, Status

from flags.models import Flag
from releasecontrol.idempotency import idempotent_create
from releasecontrol.paging import cursor_decode, page
from releasecontrol.schemas import MAX_INT64, IdempotencyKeyHeader, errors
from releasecontrol.selectors import environment_get

from . import metrics, selectors, services
from .models import GateEvaluation, Release
from .schemas import (
    AcceptedOut,
    EvaluationPage,
    IdCursor,
    MetricsIn,
    PageQuery,
    ReasonIn,
    ReleaseCreateIn,
    ReleaseListQuery,
    ReleaseOut,
    ReleasePage,
    ReleasePatchIn,
    SamplePage,
    SamplesQuery,
)

router = Router()

ReleasePath = Annotated[int, Path(ge=1, le=MAX_INT64, description="The release's id.")]
RELEASE = "/releases/{id}"


# --- Shaping the answers --------------------------------------------------------------------


def _evaluation_json(evaluation: GateEvaluation) -> dict[str, Any]:
    return {
        "id": evaluation.pk,
        "gate": evaluation.gate.name if "gate" in evaluation._state.fields_cache else None,
        "outcome": evaluation.outcome,
        "value": evaluation.value,
        "samples": evaluation.samples,
        "evaluated_at": evaluation.evaluated_at,
        "threshold": evaluation.threshold,
        "window_start": evaluation.window_start,
        "window_end": evaluation.window_end,
        "source": evaluation.source,
        "detail": evaluation.detail,
        "action": evaluation.action,
    }


def _latest(gate, kept: GateEvaluation | None) -> dict[str, Any] | None:
    """The monitor's latest outcome (Gate.last_*), with the kept evaluation's figures."""
    if gate.last_evaluated_at is None and kept is None:
        return None
    if kept is not None and (
        gate.last_evaluated_at is None or kept.evaluated_at >= gate.last_evaluated_at
    ):
        return _evaluation_json(kept)
    same = kept is not None and kept.outcome == gate.last_outcome
    return {
        "outcome": gate.last_outcome,
        "value": kept.value if same else None,
        "samples": kept.samples if same else 0,
        "evaluated_at": gate.last_evaluated_at,
    }


def release_json(release: Release, latest: dict[int, GateEvaluation]) -> dict[str, Any]:
    """Reads only what selectors.releases_with_details prefetched."""
    stages = list(release.stages.all())
    current = next((s for s in stages if s.index == release.current_stage_index), None)
    return {
        "id": release.pk,
        "name": release.name,
        "version": release.version,
        "environment": release.environment.slug,
        "flags": sorted(rf.flag.key for rf in release.release_flags.all()),
        "allowlist": release.allowlist,
        "plan_template": release.plan_template,
        "status": release.status,
        "current_stage": (
            {
                "index": current.index,
                "name": current.name,
                "mode": current.mode,
                "percentage": current.percentage,
            }
            if current is not None and release.status != "draft"
            else None
        ),
        "stage_entered_at": release.stage_entered_at,
        "paused_reason": release.paused_reason,
        "revision": release.revision,
        "requested_by": release.requested_by.username,
        "approval": release.approval_request_id,
        "pending_request": release.pending_request_id,
        "dead_man_seconds": release.dead_man_seconds,
        "stages": [
            {
                "index": s.index,
                "name": s.name,
                "mode": s.mode,
                "percentage": s.percentage,
                "hold_seconds": s.hold_seconds,
                "needs_go": s.needs_go,
            }
            for s in stages
        ],
        "gates": [
            {
                "name": g.name,
                "metric": g.metric,
                "aggregate": g.aggregate,
                "comparator": g.comparator,
                "threshold": g.threshold,
                "window_seconds": g.window_seconds,
                "min_samples": g.min_samples,
                "failures_to_act": g.failures_to_act,
                "no_data": g.no_data,
                "on_failure": g.on_failure,
                "advisory": g.advisory,
                "stage": g.stage.name if g.stage else None,
                "source": g.source,
                "baseline": g.baseline,
                "latest": _latest(g, latest.get(g.pk)),
            }
            for g in release.gates.all()
        ],
        "created_at": release.created_at,
        "started_at": release.started_at,
        "ended_at": release.ended_at,
    }


def _one(pk: int) -> dict[str, Any]:
    release = selectors.release_get(pk)
    return release_json(release, selectors.latest_evaluations([release]))


def _flags(keys: Sequence[str]) -> list[Flag]:
    found = {f.key: f for f in Flag.objects.filter(key__in=list(keys))}
    missing = {
        f"flags[{i}]": f"there is no flag {k!r}" for i, k in enumerate(keys) if k not in found
    }
    if missing:
        raise ValidationError(missing)
    return [found[k] for k in keys]


# --- Releases -------------------------------------------------------------------------------


@router.post(
    "/releases",
    url_name="releases",
    response={201: ReleaseOut, **errors(400, 401, 403, 404, 409)},
    tags=["releases"],
    summary="Prepare a release (a draft): its flags, plan and gates",
)
def release_create(
    request: HttpRequest, payload: ReleaseCreateIn, idempotency_key: IdempotencyKeyHeader = None
) -> Any:
    def create() -> tuple[int, ReleaseOut]:
        release = services.release_create(
            actor=request.auth,
            name=payload.name,
            version=payload.version,
            environment=environment_get(payload.environment),
            flags=_flags(payload.flags),
            plan=payload.plan,
            gates=payload.gates,
            allowlist=payload.allowlist,
            dead_man_seconds=payload.dead_man_seconds,
            reason=payload.reason or "",
        )
        return 201, ReleaseOut.model_validate(_one(release.pk))

    result = idempotent_create(request, key=idempotency_key, body=payload, create=create)
    return result if not isinstance(result, tuple) else Status(*result)


@router.get(
    "/releases",
    url_name="releases",
    response={200: ReleasePage, **errors(400, 401, 404)},
    tags=["releases"],
    summary="Releases, newest first",
)
def release_list(request: HttpRequest, query: Query[ReleaseListQuery]) -> dict[str, Any]:
    after = cursor_decode(query.cursor, IdCursor)
    slug = query.environment.strip()
    rows = list(
        selectors.release_list(
            environment=environment_get(slug) if slug else None,
            status=query.status,
            before_id=after.id if after else None,
        )[: query.limit + 1]
    )
    items, next_cursor = page(rows, query.limit, lambda r: IdCursor(id=r.pk))
    latest = selectors.latest_evaluations(items)
    return {"items": [release_json(r, latest) for r in items], "next": next_cursor}


@router.get(
    RELEASE,
    url_name="release",
    response={200: ReleaseOut, **errors(400, 401, 404)},
    tags=["releases"],
    summary="One release: status, current stage, and each gate's latest evaluation",
)
def release_get(request: HttpRequest, id: ReleasePath) -> dict[str, Any]:
    return _one(id)


@router.patch(
    RELEASE,
    url_name="release",
    response={200: ReleaseOut, **errors(400, 401, 403, 404, 409)},
    tags=["releases"],
    summary="Edit a release (a live one pauses; in production its approval is void)",
)
def release_update(request: HttpRequest, id: ReleasePath, payload: ReleasePatchIn) -> dict:
    fields = payload.model_dump(exclude_unset=True, exclude={"reason"})
    fields = {name: value for name, value in fields.items() if value is not None}
    if "flags" in fields:
        fields["flags"] = _flags(fields["flags"])
    services.release_update(
        actor=request.auth,
        release=selectors.release_get(id),
        reason=payload.reason or "",
        **fields,
    )
    return _one(id)


@router.get(
    RELEASE + "/evaluations",
    url_name="release_evaluations",
    response={200: EvaluationPage, **errors(400, 401, 404)},
    tags=["releases"],
    summary="The release's kept gate evaluations, newest first",
)
def release_evaluations(request: HttpRequest, id: ReleasePath, query: Query[PageQuery]) -> dict:
    after = cursor_decode(query.cursor, IdCursor)
    rows = selectors.release_evaluations(
        selectors.release_get(id), before_id=after.id if after else None, limit=query.limit + 1
    )
    items, next_cursor = page(rows, query.limit, lambda e: IdCursor(id=e.pk))
    return {"items": [_evaluation_json(e) for e in items], "next": next_cursor}


@router.get(
    RELEASE + "/samples",
    url_name="release_samples",
    response={200: SamplePage, **errors(400, 401, 404)},
    tags=["releases"],
    summary="The release's metric samples, newest first",
)
def release_samples(request: HttpRequest, id: ReleasePath, query: Query[SamplesQuery]) -> dict:
    after = cursor_decode(query.cursor, IdCursor)
    rows = selectors.release_samples(
        selectors.release_get(id),
        metric=query.metric.strip(),
        since=query.since,
        before_id=after.id if after else None,
        limit=query.limit + 1,
    )
    items, next_cursor = page(rows, query.limit, lambda s: IdCursor(id=s.pk))
    return {
        "items": [
            {
                "id": s.pk,
                "metric": s.metric,
                "cohort": s.cohort,
                "value": s.value,
                "total": s.total,
                "time": s.time,
                "submitted_by": s.submitted_by.username,
            }
            for s in items
        ],
        "next": next_cursor,
    }


def _step(name: str, service: Callable[..., Release], summary: str) -> None:
    def handler(request: HttpRequest, id: ReleasePath, payload: ReasonIn) -> dict:
        service(actor=request.auth, release=selectors.release_get(id), reason=payload.reason or "")
        return _one(id)

    handler.__name__ = f"release_{name}"
    router.post(
        f"{RELEASE}/{name}",
        url_name=f"release_{name}",
        response={200: ReleaseOut, **errors(400, 401, 403, 404, 409)},
        tags=["releases"],
        summary=summary,
        description="403 for agents in production; 409 when the release's status does not "
        "allow it, or an approval is needed (`approval_required` names the request to make "
        "through POST /api/v1/approvals).",
    )(handler)


_step("start", services.release_start, "Start a release (its first stage)")
_step("advance", services.release_advance, "Advance a release to its next stage")
_step("pause", services.release_pause, "Pause a release where it is")
_step("resume", services.release_resume, "Resume a paused release")
_step("rollback", services.release_rollback, "Roll back a release: its flags off")


# --- Metrics --------------------------------------------------------------------------------


@router.post(
    "/metrics",
    url_name="metrics",
    response={202: AcceptedOut, **errors(400, 401, 403, 409)},
    tags=["metrics"],
    summary="Submit a batch of metric samples (all kept, or none)",
)
def metrics_submit(
    request: HttpRequest, payload: MetricsIn, idempotency_key: IdempotencyKeyHeader = None
) -> Any:
    def create() -> tuple[int, AcceptedOut]:
        accepted = metrics.metric_samples_submit(
            actor=request.auth,
            samples=[s.model_dump(exclude_none=True) for s in payload.samples],
            idempotency_key=idempotency_key,
        )
        return 202, AcceptedOut(accepted=accepted)

    result = idempotent_create(request, key=idempotency_key, body=payload, create=create)
    return result if not isinstance(result, tuple) else Status(*result)
