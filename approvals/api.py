"""The approvals API (a django-ninja Router on the site's /api/v1/): requests, their
checklists and decisions, execution, cancelling, post-reviews, blackout windows and the
checklist templates.

Handlers are thin: the schemas (approvals/schemas.py) validate the request, the handler calls
one service and answers the request as the selectors read it. Who may decide or execute,
stale hashes, expiry, blackouts and drift are the services'; releasecontrol.api's exception
handlers turn their exceptions into {"error", "detail"} answers.
"""

from __future__ import annotations

from typing import Annotated, Any

from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest
from django.utils import timezone
from ninja import Path, Query, Router, Status

from releasecontrol.errors import Conflict
from releasecontrol.idempotency import idempotent_create
from releasecontrol.models import Environment
from releasecontrol.paging import PageQuery, cursor_decode, page
from releasecontrol.schemas import (
    MAX_INT64,
    IdempotencyKeyHeader,
    errors,
)
from releasecontrol.selectors import environment_get

from . import blackouts, decisions, execution, selectors, services
from .checklists import template_view
from .models import ApprovalRequest, BlackoutWindow, Decision, DecisionKind
from .schemas import (
    ApprovalCreateIn,
    ApprovalListQuery,
    ApprovalOut,
    ApprovalPage,
    ApprovalPatchIn,
    BlackoutCreateIn,
    BlackoutDeleteQuery,
    BlackoutOut,
    BlackoutPage,
    CancelIn,
    ChecklistItemPatchIn,
    ChecklistTemplatePage,
    DecisionIn,
    ExecuteIn,
    IdCursor,
    PostReviewIn,
    SlugCursor,
)

router = Router()

Id = Annotated[int, Path(ge=1, le=MAX_INT64, description="The request's number.")]
ItemId = Annotated[int, Path(ge=1, le=MAX_INT64, description="A checklist item's id.")]
BlackoutId = Annotated[int, Path(ge=1, le=MAX_INT64, description="The window's id.")]
EnvironmentPath = Annotated[str, Path(description="development, staging, production...")]
REQUEST = "/approvals/{id}"
WRITE_ERRORS = errors(400, 401, 403, 404, 409)


class NoPostReview(Conflict):
    code = "no_post_review"


# --- Shaping the answers --------------------------------------------------------------------


def _name(user: Any) -> str | None:
    return user.username if user is not None else None


def _window(start: Any, end: Any) -> dict[str, Any] | None:
    return {"start": start, "end": end} if start is not None else None


def _decision_json(decision: Decision) -> dict[str, Any]:
    return {
        "id": decision.pk,
        "decision": decision.decision,
        "decider": decision.decider.username,
        "comment": decision.comment,
        "revision": decision.revision,
        "preview_hash": decision.preview_hash,
        "created_at": decision.created_at,
        "void": decision.void,
    }


def _approval_json(request: ApprovalRequest) -> dict[str, Any]:
    """A request as the API shows it. Reads only what selectors.approval_requests_in_full
    joined or prefetched, so a page costs the same number of queries whatever its length."""
    made = list(request.decisions.all())
    review = getattr(request, "post_review", None)
    return {
        "id": request.pk,
        "status": request.status,
        "environment": request.environment.slug,
        "action": request.action,
        "parameters": request.parameters,
        "title": request.title,
        "urgency": request.urgency,
        "risk": request.risk,
        "impact": request.impact,
        "mitigation": request.mitigation,
        "rollback_plan": request.rollback_plan,
        "window": _window(request.window_start, request.window_end),
        "alternative_window": _window(
            request.alternative_window_start, request.alternative_window_end
        ),
        "revision": request.revision,
        "preview": request.preview,
        "preview_hash": request.preview_hash,
        "approvals_required": request.approvals_required,
        # The gos that count, as decisions.valid_gos reads them, from the prefetched rows.
        "approvals": [
            _decision_json(d)
            for d in made
            if d.decision == DecisionKind.GO and not d.void and d.revision == request.revision
        ],
        "decisions": [_decision_json(d) for d in made],
        "checklist": [
            {
                "id": item.pk,
                "section": item.section,
                "text": item.text,
                "required": item.required,
                "evidence_required": item.evidence_required,
                "checked": item.checked,
                "checked_by": _name(item.checked_by),
                "checked_at": item.checked_at,
                "evidence": item.evidence,
            }
            for item in request.checklist.all()
        ],
        "checklist_template": request.checklist_template.slug
        if request.checklist_template
        else None,
        "requested_by": request.requested_by.username,
        "emergency_confirmed_by": _name(request.emergency_confirmed_by),
        "created_at": request.created_at,
        "updated_at": request.updated_at,
        "expires_at": request.expires_at,
        "approved_at": request.approved_at,
        "executed_at": request.executed_at,
        "executed_by": _name(request.executed_by),
        "result": request.result,
        "suspended_reason": request.suspended_reason,
        "post_review": {
            "opened_at": review.opened_at,
            "closed_at": review.closed_at,
            "closed_by": _name(review.closed_by),
            "notes": review.notes,
        }
        if review is not None
        else None,
    }


def _one(pk: int) -> ApprovalOut:
    return ApprovalOut.model_validate(_approval_json(selectors.approval_request_get(pk)))


def _blackout_json(window: BlackoutWindow, now: Any) -> dict[str, Any]:
    return {
        "starts_at": None,
        "ends_at": None,
        "weekly": None,
        **blackouts.blackout_view(window),
        "time_zone": window.time_zone,
        "open_now": window.deleted_at is None and blackouts.window_contains(window, now),
        "created_by": window.created_by.username,
        "created_at": window.created_at,
        "deleted_at": window.deleted_at,
        "deleted_by": _name(window.deleted_by),
    }


def _environment_named(slug: str) -> Environment:
    """An environment a body names: an unknown one is that field's error."""
    try:
        return environment_get(slug)
    except Http404:
        raise ValidationError({"environment": f"There is no environment {slug!r}."}) from None


def _text(value: str | None) -> str:
    return value or ""


def _created(result: tuple[int, Any] | Any) -> Any:
    return Status(*result) if isinstance(result, tuple) else result


# --- Requests -------------------------------------------------------------------------------


@router.post(
    "/approvals",
    url_name="approvals",
    response={201: ApprovalOut, **WRITE_ERRORS},
    tags=["approvals"],
    summary="Ask for a go: the preview and its hash are computed now",
)
def approval_request_create(
    request: HttpRequest, payload: ApprovalCreateIn, idempotency_key: IdempotencyKeyHeader = None
) -> Any:
    def create() -> tuple[int, ApprovalOut]:
        window, alternative = payload.window, payload.alternative_window
        made = services.approval_request_create(
            actor=request.auth,
            environment=_environment_named(payload.environment),
            action=payload.action,
            parameters=payload.parameters,
            title=payload.title,
            urgency=payload.urgency,
            risk=payload.risk,
            impact=_text(payload.impact),
            mitigation=_text(payload.mitigation),
            rollback_plan=_text(payload.rollback_plan),
            window_start=window.start if window else None,
            window_end=window.end if window else None,
            alternative_window_start=alternative.start if alternative else None,
            alternative_window_end=alternative.end if alternative else None,
            checklist=payload.checklist,
            reason=_text(payload.reason),
        )
        return 201, _one(made.pk)

    return _created(idempotent_create(request, key=idempotency_key, body=payload, create=create))


@router.get(
    "/approvals",
    url_name="approvals",
    response={200: ApprovalPage, **errors(400, 401, 404)},
    tags=["approvals"],
    summary="Requests, newest first",
)
def approval_request_list(request: HttpRequest, query: Query[ApprovalListQuery]) -> dict[str, Any]:
    before = cursor_decode(query.cursor, IdCursor)
    slug = (query.environment or "").strip()
    if slug:
        environment_get(slug)  # an unknown environment is a 404, not an empty list
    requests = selectors.approval_requests_in_full(status=query.status or None, environment=slug)
    if before is not None:
        requests = requests.filter(pk__lt=before.id)
    rows, next_cursor = page(
        list(requests[: query.limit + 1]), query.limit, lambda r: IdCursor(id=r.pk)
    )
    return {"items": [_approval_json(r) for r in rows], "next": next_cursor}


@router.get(
    REQUEST,
    url_name="approval",
    response={200: ApprovalOut, **errors(400, 401, 404)},
    tags=["approvals"],
    summary="One request with its checklist, decisions (void ones too) and preview",
)
def approval_request_get(request: HttpRequest, id: Id) -> ApprovalOut:
    return _one(id)


@router.patch(
    REQUEST,
    url_name="approval",
    response={200: ApprovalOut, **WRITE_ERRORS},
    tags=["approvals"],
    summary="Edit any field or the parameters: a new revision and hash, earlier gos void",
)
def approval_request_update(request: HttpRequest, id: Id, payload: ApprovalPatchIn) -> ApprovalOut:
    sent = payload.model_dump(exclude_unset=True)
    reason = _text(sent.pop("reason", None))
    changes: dict[str, Any] = {}
    for field, value in sent.items():
        if field in ("window", "alternative_window"):
            changes[f"{field}_start"] = value["start"] if value else None
            changes[f"{field}_end"] = value["end"] if value else None
        elif field in ("impact", "mitigation", "rollback_plan"):
            changes[field] = _text(value)
        else:
            changes[field] = value
    services.approval_request_update(
        actor=request.auth,
        request=selectors.approval_request_get(id),
        reason=reason,
        **changes,
    )
    return _one(id)


@router.patch(
    REQUEST + "/checklist/{item}",
    url_name="approval_checklist_item",
    response={200: ApprovalOut, **WRITE_ERRORS},
    tags=["approvals"],
    summary="Check or uncheck a checklist item, with evidence: a new revision and hash",
)
def checklist_item_set(
    request: HttpRequest, id: Id, item: ItemId, payload: ChecklistItemPatchIn
) -> ApprovalOut:
    services.checklist_item_set(
        actor=request.auth,
        item=selectors.checklist_item_get(id, item),
        checked=payload.checked,
        evidence=payload.evidence,
        reason=_text(payload.reason),
    )
    return _one(id)


@router.post(
    REQUEST + "/decisions",
    url_name="approval_decisions",
    response={200: ApprovalOut, **WRITE_ERRORS},
    tags=["approvals"],
    summary="Go, adjust or no-go on the preview hash you read (people only)",
)
def approval_decide(request: HttpRequest, id: Id, payload: DecisionIn) -> ApprovalOut:
    decisions.approval_decide(
        actor=request.auth,
        request=selectors.approval_request_get(id),
        decision=payload.decision,
        preview_hash=payload.preview_hash,
        comment=_text(payload.comment),
        reason=_text(payload.reason),
    )
    return _one(id)


@router.post(
    REQUEST + "/execute",
    url_name="approval_execute",
    response={200: ApprovalOut, **WRITE_ERRORS},
    tags=["approvals"],
    summary="Carry out an approved request (a person with the action's own permission)",
)
def approval_execute(request: HttpRequest, id: Id, payload: ExecuteIn) -> ApprovalOut:
    execution.approval_execute(
        actor=request.auth,
        request=selectors.approval_request_get(id),
        reason=_text(payload.reason),
    )
    return _one(id)


@router.post(
    REQUEST + "/cancel",
    url_name="approval_cancel",
    response={200: ApprovalOut, **WRITE_ERRORS},
    tags=["approvals"],
    summary="Withdraw a request (its requester) or close it (a release manager)",
)
def approval_cancel(request: HttpRequest, id: Id, payload: CancelIn | None = None) -> ApprovalOut:
    services.approval_cancel(
        actor=request.auth,
        request=selectors.approval_request_get(id),
        reason=_text(payload.reason if payload else None),
    )
    return _one(id)


@router.post(
    REQUEST + "/post-review",
    url_name="approval_post_review",
    response={200: ApprovalOut, **WRITE_ERRORS},
    tags=["approvals"],
    summary="Close an executed emergency's post-review with notes (release managers)",
)
def post_review_close(request: HttpRequest, id: Id, payload: PostReviewIn) -> ApprovalOut:
    approval = selectors.approval_request_get(id)
    review = getattr(approval, "post_review", None)
    if review is None:
        raise NoPostReview(
            f"Request #{id} has no post-review: only an executed emergency opens one."
        )
    execution.post_review_close(actor=request.auth, review=review, notes=_text(payload.notes))
    return _one(id)


# --- Blackout windows -------------------------------------------------------------------------


@router.get(
    "/environments/{slug:environment}/blackouts",
    url_name="environment_blackouts",
    response={200: BlackoutPage, **errors(400, 401, 404)},
    tags=["blackouts"],
    summary="The environment's blackout windows",
)
def blackout_window_list(
    request: HttpRequest, environment: EnvironmentPath, query: Query[PageQuery]
) -> dict[str, Any]:
    after = cursor_decode(query.cursor, IdCursor)
    environment_get(environment)
    windows = selectors.blackout_windows(environment=environment).order_by("id")
    if after is not None:
        windows = windows.filter(pk__gt=after.id)
    rows, next_cursor = page(
        list(windows[: query.limit + 1]), query.limit, lambda w: IdCursor(id=w.pk)
    )
    now = timezone.now()
    return {"items": [_blackout_json(w, now) for w in rows], "next": next_cursor}


@router.post(
    "/environments/{slug:environment}/blackouts",
    url_name="environment_blackouts",
    response={201: BlackoutOut, **WRITE_ERRORS},
    tags=["blackouts"],
    summary="Add a one-off or weekly blackout window (release managers)",
)
def blackout_window_create(
    request: HttpRequest,
    environment: EnvironmentPath,
    payload: BlackoutCreateIn,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Any:
    def create() -> tuple[int, BlackoutOut]:
        weekly = payload.weekly.model_dump(exclude_none=True) if payload.weekly else None
        window = blackouts.blackout_window_create(
            actor=request.auth,
            environment=environment_get(environment),
            reason=_text(payload.reason),
            starts_at=payload.starts_at,
            ends_at=payload.ends_at,
            weekly=weekly,
            time_zone=payload.time_zone,
        )
        window = selectors.blackout_window_get(window.pk)
        return 201, BlackoutOut.model_validate(_blackout_json(window, timezone.now()))

    return _created(idempotent_create(request, key=idempotency_key, body=payload, create=create))


@router.delete(
    "/blackouts/{id}",
    url_name="blackout",
    response={200: BlackoutOut, **WRITE_ERRORS},
    tags=["blackouts"],
    summary="Remove a blackout window (release managers); the answer shows it removed",
)
def blackout_window_delete(
    request: HttpRequest, id: BlackoutId, query: Query[BlackoutDeleteQuery]
) -> BlackoutOut:
    window = selectors.blackout_window_get(id)
    blackouts.blackout_window_delete(actor=request.auth, window=window, reason=query.reason)
    window.refresh_from_db()
    return BlackoutOut.model_validate(_blackout_json(window, timezone.now()))


# --- Checklist templates ------------------------------------------------------------------------


@router.get(
    "/checklists",
    url_name="checklists",
    response={200: ChecklistTemplatePage, **errors(400, 401)},
    tags=["approvals"],
    summary="The checklist templates a request may name, by slug",
)
def checklist_template_list(request: HttpRequest, query: Query[PageQuery]) -> dict[str, Any]:
    after = cursor_decode(query.cursor, SlugCursor)
    templates = selectors.checklist_templates()
    if after is not None:
        templates = templates.filter(slug__gt=after.slug)
    rows, next_cursor = page(
        list(templates[: query.limit + 1]), query.limit, lambda t: SlugCursor(slug=t.slug)
    )
    return {"items": [template_view(t) for t in rows], "next": next_cursor}
