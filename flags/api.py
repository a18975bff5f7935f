"""The flags API (a django-ninja Router on the site's /api/v1/): flags, their state per
environment, history and restore. (The environment rollback is rollouts' endpoint: it stops
live releases too.)

Handlers are thin: the schemas (flags/schemas.py) validate the request, the handler calls
one service or selector and returns a schema. Policy, kill switches, stale versions and
audit live in flags.services; releasecontrol.api's exception handlers turn their exceptions
into {"error", "detail"} answers.
"""

from __future__ import annotations

from typing import Annotated, Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError
from django.http import Http404, HttpRequest
from ninja import Path, Query, Router, Status

from releasecontrol.api import ApiError
from releasecontrol.idempotency import idempotent_create
from releasecontrol.models import AuditEvent, Environment, User
from releasecontrol.paging import cursor_decode, page
from releasecontrol.schemas import IdempotencyKeyHeader, errors
from releasecontrol.selectors import environment_get, environment_list

from . import actions, selectors, services
from .models import Flag, FlagState, KillSwitch
from .schemas import (
    AcceptIn,
    ChangeConflictOut,
    ChangedStateOut,
    EventCursor,
    EventPage,
    FlagCreateIn,
    FlagCursor,
    FlagKey,
    FlagListQuery,
    FlagOut,
    FlagPage,
    HistoryQuery,
    RestoredStateOut,
    RestoreIn,
    StatePatchIn,
)

router = Router()

KeyPath = Annotated[FlagKey, Path()]
EnvironmentPath = Annotated[str, Path(description="development, staging, production...")]
STATE = "/flags/{key}/environments/{slug:environment}"


# --- Shaping the answers --------------------------------------------------------------------


def _state_json(state: FlagState | None) -> dict[str, Any]:
    """A state as the API shows it. No row yet means off at version 1: the row the first
    change creates starts at version 1, so that is the version a PATCH must send."""
    if state is None:
        return {
            "mode": "off",
            "percentage": 0,
            "allowlist": [],
            "version": 1,
            "updated_at": None,
            "updated_by": None,
        }
    return {
        **services.state_view(state),
        "updated_at": state.updated_at,
        "updated_by": state.updated_by.username if state.updated_by else None,
    }


def _kill_switch_json(switch: KillSwitch) -> dict[str, Any]:
    return {
        "id": switch.pk,
        "scope": switch.scope,
        "subject": switch.subject,
        "engaged_at": switch.engaged_at,
        "engaged_by": switch.engaged_by.username,
        "reason": switch.reason,
    }


def _flag_json(
    flag: Flag, environments: list[Environment], switches: selectors.KillSwitchCover
) -> dict[str, Any]:
    """The flag with its state in every environment, in promotion order.

    Reads only prefetched relations (see selectors.flag_list), so a page of flags costs
    the same number of queries whatever its length.
    """
    states = {state.environment_id: state for state in flag.states.all()}
    result = {
        "key": flag.key,
        "name": flag.name,
        "description": flag.description,
        "tags": sorted(tag.name for tag in flag.tags.all()),
        "type": flag.type,
        "on_value": flag.on_value,
        "off_value": flag.off_value,
        "archived": flag.archived,
        "owner": flag.owner.username if flag.owner else None,
        "created_at": flag.created_at,
        "environments": {},
    }
    for environment in environments:
        switch = switches.covering(flag, environment)
        state = states.get(environment.pk)
        result["environments"][environment.slug] = {
            **_state_json(state),
            "kill_switch": _kill_switch_json(switch) if switch else None,
            "values_served": not flag.needs_acceptance_in(environment)
            or (state is not None and state.serves_values_of(flag)),
        }
    return result


def _one_flag(key: str) -> FlagOut:
    flag = selectors.flag_get(key)
    return FlagOut.model_validate(
        _flag_json(flag, list(environment_list()), selectors.kill_switch_cover())
    )


def _changed_state(state: FlagState, flag: Flag, environment: Environment) -> dict[str, Any]:
    return {"flag": flag.key, "environment": environment.slug, **_state_json(state)}


def _event_json(event: AuditEvent, flag: Flag) -> dict[str, Any]:
    before = event.before
    if event.action == actions.KILL_SWITCH_ENGAGE.name and isinstance(before, dict):
        # A kill switch's `before` lists every state it turned off: show this flag's only.
        before = {"states": [s for s in before.get("states", []) if s.get("flag") == flag.key]}
    return {
        "id": event.pk,
        "created_at": event.created_at,
        "actor": event.actor_name,
        "actor_kind": event.actor_kind,
        "action": event.action,
        "outcome": event.outcome,
        "environment": event.environment_id,
        "before": before,
        "after": event.after,
        "reason": event.reason,
    }


# --- Flags ------------------------------------------------------------------------------------


@router.get(
    "/flags",
    url_name="flags",
    response={200: FlagPage, **errors(400, 401)},
    tags=["flags"],
    summary="Flags with their state in every environment, by key",
)
def flag_list(request: HttpRequest, query: Query[FlagListQuery]) -> dict[str, Any]:
    after = cursor_decode(query.cursor, FlagCursor)
    flags = selectors.flag_list(search=query.search.strip(), tag=query.tag.strip().lower())
    if after is not None:
        flags = flags.filter(key__gt=after.key)
    rows, next_cursor = page(
        list(flags[: query.limit + 1]), query.limit, lambda f: FlagCursor(key=f.key)
    )
    environments = list(environment_list())
    switches = selectors.kill_switch_cover()
    return {"items": [_flag_json(f, environments, switches) for f in rows], "next": next_cursor}


@router.post(
    "/flags",
    url_name="flags",
    response={201: FlagOut, **errors(400, 401, 403, 409)},
    tags=["flags"],
    summary="Create a flag (off in every environment)",
)
def flag_create(
    request: HttpRequest, payload: FlagCreateIn, idempotency_key: IdempotencyKeyHeader = None
) -> Any:
    def create() -> tuple[int, FlagOut]:
        flag = _flag_create(request.auth, payload)
        return 201, _one_flag(flag.key)

    result = idempotent_create(request, key=idempotency_key, body=payload, create=create)
    return result if not isinstance(result, tuple) else Status(*result)


def _flag_create(actor: User, payload: FlagCreateIn) -> Flag:
    try:
        return services.flag_create(
            actor=actor,
            key=payload.key,
            name=payload.name or "",
            description=payload.description or "",
            tags=payload.tags,
            type=payload.type,
            on_value=payload.on_value,
            off_value=payload.off_value,
        )
    except ValidationError as error:
        if any(e.code == "unique" for e in getattr(error, "error_dict", {}).get("key", [])):
            raise _duplicate(payload.key) from None
        raise
    except IntegrityError:
        # Two creates raced past validation; the unique index decided.
        if Flag.objects.filter(key=payload.key).exists():
            raise _duplicate(payload.key) from None
        raise


def _duplicate(key: str) -> ApiError:
    return ApiError(
        409,
        "flag_exists",
        f"A flag with key {key!r} already exists: read it at GET /api/v1/flags/{key}, "
        "or choose another key.",
    )


@router.get(
    "/flags/{key}",
    url_name="flag",
    response={200: FlagOut, **errors(400, 401, 404)},
    tags=["flags"],
    summary="One flag with its state in every environment",
)
def flag_get(request: HttpRequest, key: KeyPath) -> FlagOut:
    return _one_flag(key)


@router.get(
    "/flags/{key}/history",
    url_name="flag_history",
    response={200: EventPage, **errors(400, 401, 404)},
    tags=["flags"],
    summary="The flag's audit events, newest first",
)
def flag_history(request: HttpRequest, key: KeyPath, query: Query[HistoryQuery]) -> dict:
    before = cursor_decode(query.cursor, EventCursor)
    flag = selectors.flag_get(key)
    slug = query.environment.strip()
    events = selectors.flag_history(
        flag,
        environment=environment_get(slug) if slug else None,
        limit=query.limit + 1,
        before=before.id if before else None,
    )
    rows, next_cursor = page(events, query.limit, lambda e: EventCursor(id=e.pk))
    return {"items": [_event_json(e, flag) for e in rows], "next": next_cursor}


# --- States -----------------------------------------------------------------------------------


@router.get(
    STATE,
    url_name="flag_state",
    response={200: ChangedStateOut, **errors(400, 401, 404)},
    tags=["flags"],
    summary="The flag's state in one environment",
)
def flag_state_get(request: HttpRequest, key: KeyPath, environment: EnvironmentPath) -> dict:
    flag = selectors.flag_get(key)
    env = environment_get(environment)
    state = FlagState.objects.filter(flag=flag, environment=env).select_related("updated_by")
    return _changed_state(state.first(), flag, env)


@router.patch(
    STATE,
    url_name="flag_state",
    response={200: ChangedStateOut, **errors(400, 401, 403, 404), 409: ChangeConflictOut},
    tags=["flags"],
    summary="Change the flag's state in one environment (send the version you read)",
    description="Developers and agents in production, and everyone for an increase where the "
    "environment requires approval, get 409 `approval_required` naming the request to make "
    "(POST /api/v1/approvals); the refusal is recorded. Inside a blackout window an increase "
    "answers 409 `blackout`.",
)
def flag_state_set(
    request: HttpRequest, key: KeyPath, environment: EnvironmentPath, payload: StatePatchIn
) -> dict:
    flag = selectors.flag_get(key)
    env = environment_get(environment)
    state = services.flag_state_set(
        actor=request.auth,
        flag=flag,
        environment=env,
        mode=payload.mode,
        percentage=payload.percentage,
        allowlist=payload.allowlist,
        expected_version=payload.version,
        reason=payload.reason or "",
    )
    return _changed_state(state, flag, env)


@router.post(
    STATE + "/restore",
    url_name="flag_state_restore",
    response={200: RestoredStateOut, **errors(400, 401, 403, 404, 409)},
    tags=["flags"],
    summary="Bring back a state recorded in the audit trail, as a new change",
)
def flag_state_restore(
    request: HttpRequest, key: KeyPath, environment: EnvironmentPath, payload: RestoreIn
) -> dict:
    flag = selectors.flag_get(key)
    env = environment_get(environment)
    event = selectors.audit_event_find(payload.event_id)
    if event is None:
        raise Http404(f"No audit event {payload.event_id}")
    state = services.flag_state_restore(
        actor=request.auth,
        flag=flag,
        environment=env,
        to=_restorable(event, flag, env, payload.side or ""),
        expected_version=payload.version,
        reason=payload.reason or "",
    )
    return {**_changed_state(state, flag, env), "restored_from": event.pk}


def _restorable(event: AuditEvent, flag: Flag, environment: Environment, side: str) -> dict:
    try:
        return selectors.restorable_state(event, flag, environment, side)
    except selectors.NotRestorable as refusal:
        raise ApiError(400, "not_restorable", str(refusal)) from None


@router.post(
    STATE + "/accept",
    url_name="flag_accept",
    response={200: ChangedStateOut, **errors(400, 401, 403, 404), 409: ChangeConflictOut},
    description="Values are accepted only through an approved `flag.accept` request "
    "(executed through POST /api/v1/approvals/{id}/execute): whoever may request gets 409 "
    "`approval_required` naming the request to make (POST /api/v1/approvals), anyone else "
    "403; the refusal is recorded. 200 only when these exact values are already accepted; "
    "400 when there is nothing to accept.",
    tags=["flags"],
    summary="Accept a non-boolean flag's values where they need it (production)",
)
def flag_accept(
    request: HttpRequest, key: KeyPath, environment: EnvironmentPath, payload: AcceptIn
) -> dict:
    flag = selectors.flag_get(key)
    env = environment_get(environment)
    state = services.flag_accept(
        actor=request.auth,
        flag=flag,
        environment=env,
        expected_version=payload.version,
        reason=payload.reason or "",
    )
    return _changed_state(state, flag, env)
