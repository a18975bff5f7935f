"""The agent API for flags: /api/v1/flags..., /api/v1/environments/{env}/rollback.

Handlers are thin: check the JSON's shape (so a bad request says what to fix), call one
service or selector, answer JSON. Policy, validation of the change itself, kill switches,
stale versions and audit all live in flags.services; releasecontrol.api turns their
exceptions into {"error", "detail"} answers. The OpenAPI document (flags/openapi.py)
describes every route below; tests/flags/test_openapi.py keeps the two in step.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import IntegrityError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import path

from releasecontrol.api import ApiError, api_endpoint, error_response, json_body
from releasecontrol.models import AuditEvent, Environment, Outcome
from releasecontrol.selectors import environment_get, environment_list

from . import actions, selectors, services
from .models import Flag, FlagState, FlagType, KillSwitch, KillSwitchScope
from .openapi import openapi_document

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 500
HISTORY_LIMIT = 200

FLAG_CREATE_FIELDS = ("key", "name", "description", "tags", "type", "on_value", "off_value")
STATE_PATCH_FIELDS = ("mode", "percentage", "allowlist", "version", "reason")
ROLLBACK_FIELDS = ("reason",)
RESTORE_FIELDS = ("event_id", "side", "version", "reason")


# --- Reading the request ------------------------------------------------------------------


def _only_fields(body: dict[str, Any], allowed: Iterable[str]) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise ApiError(
            400,
            "unknown_field",
            f"Unknown field(s): {', '.join(unknown)}. Send only: {', '.join(allowed)}.",
        )


def _text(body: dict[str, Any], name: str, *, required: bool = False, default: str = "") -> str:
    value = body.get(name)
    if value is None:
        if required:
            raise ApiError(400, "invalid", f"{name}: required, a string.")
        return default
    if not isinstance(value, str):
        raise ApiError(400, "invalid", f"{name}: must be a string, not {type(value).__name__}.")
    return value


def _optional_version(body: dict[str, Any], name: str = "version") -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ApiError(
            400,
            "invalid",
            f"{name}: must be the state's version as you read it (a whole number from 1), "
            f"e.g. from GET /api/v1/flags/{{key}}.",
        )
    return value


def _query_int(request: HttpRequest, name: str, *, default: int, maximum: int | None = None) -> int:
    raw = request.GET.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1 or (maximum is not None and value > maximum):
        limit = f"1 to {maximum}" if maximum is not None else "1 or more"
        raise ApiError(400, "invalid", f"{name}: must be a whole number from {limit}, not {raw!r}.")
    return value


# --- Writing the answer -------------------------------------------------------------------


def _time(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


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
        "updated_at": _time(state.updated_at),
        "updated_by": state.updated_by.username if state.updated_by else None,
    }


def _kill_switch_json(switch: KillSwitch) -> dict[str, Any]:
    return {
        "id": switch.pk,
        "scope": switch.scope,
        "subject": switch.subject,
        "engaged_at": _time(switch.engaged_at),
        "engaged_by": switch.engaged_by.username,
        "reason": switch.reason,
    }


class _KillSwitchIndex:
    """Every engaged kill switch, read once, answering which one covers a flag somewhere."""

    def __init__(self) -> None:
        self.by_environment: dict[int, list[KillSwitch]] = {}
        for switch in selectors.engaged_kill_switches():
            self.by_environment.setdefault(switch.environment_id, []).append(switch)

    def covering(self, flag: Flag, environment: Environment) -> KillSwitch | None:
        tag_ids = {tag.pk for tag in flag.tags.all()}  # prefetched
        for switch in reversed(self.by_environment.get(environment.pk, [])):  # oldest first
            if (
                switch.scope == KillSwitchScope.ENVIRONMENT
                or (switch.scope == KillSwitchScope.FLAG and switch.flag_id == flag.pk)
                or (switch.scope == KillSwitchScope.TAG and switch.tag_id in tag_ids)
            ):
                return switch
        return None


def _flag_json(
    flag: Flag, environments: list[Environment], switches: _KillSwitchIndex
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
        "created_at": _time(flag.created_at),
        "environments": {},
    }
    for environment in environments:
        switch = switches.covering(flag, environment)
        result["environments"][environment.slug] = {
            **_state_json(states.get(environment.pk)),
            "kill_switch": _kill_switch_json(switch) if switch else None,
        }
    return result


def _one_flag_json(key: str) -> dict[str, Any]:
    return _flag_json(selectors.flag_get(key), list(environment_list()), _KillSwitchIndex())


def _changed_state_json(state: FlagState, flag: Flag, environment: Environment) -> dict[str, Any]:
    return {"flag": flag.key, "environment": environment.slug, **_state_json(state)}


def _event_json(event: AuditEvent, flag: Flag) -> dict[str, Any]:
    before = event.before
    if event.action == actions.KILL_SWITCH_ENGAGE.name and isinstance(before, dict):
        # A kill switch's `before` lists every state it turned off: show this flag's only.
        before = {"states": [s for s in before.get("states", []) if s.get("flag") == flag.key]}
    return {
        "id": event.pk,
        "created_at": _time(event.created_at),
        "actor": event.actor_name,
        "actor_kind": event.actor_kind,
        "action": event.action,
        "outcome": event.outcome,
        "environment": event.environment_id,
        "before": before,
        "after": event.after,
        "reason": event.reason,
    }


# --- Endpoints ------------------------------------------------------------------------------


@api_endpoint(methods=("GET", "POST"))
def flags_collection(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return _flag_create(request)
    page_number = _query_int(request, "page", default=1)
    page_size = _query_int(request, "page_size", default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
    search = request.GET.get("search", "").strip()
    tag = request.GET.get("tag", "").strip().lower()
    paginator = Paginator(selectors.flag_list(search=search, tag=tag), page_size)
    if page_number > paginator.num_pages:
        raise ApiError(
            404,
            "not_found",
            f"No page {page_number}: there are {paginator.num_pages} page(s) of {page_size}.",
        )
    page = paginator.page(page_number)
    environments = list(environment_list())
    switches = _KillSwitchIndex()
    return JsonResponse(
        {
            "count": paginator.count,
            "page": page_number,
            "page_size": page_size,
            "pages": paginator.num_pages,
            "next": page.next_page_number() if page.has_next() else None,
            "previous": page.previous_page_number() if page.has_previous() else None,
            "results": [_flag_json(flag, environments, switches) for flag in page.object_list],
        }
    )


def _flag_create(request: HttpRequest) -> HttpResponse:
    body = json_body(request)
    _only_fields(body, FLAG_CREATE_FIELDS)
    key = _text(body, "key", required=True)
    flag_type = _text(body, "type", default=FlagType.BOOLEAN)
    if flag_type not in FlagType.values:
        raise ApiError(400, "invalid", f"type: must be one of {', '.join(FlagType.values)}.")
    tags = body.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ApiError(400, "invalid", 'tags: must be a list of strings, e.g. ["payments"].')
    if flag_type != FlagType.BOOLEAN:
        missing = [f for f in ("on_value", "off_value") if body.get(f) is None]
        if missing:
            raise ApiError(
                400,
                "invalid",
                f"{' and '.join(missing)}: required for a {flag_type} flag "
                "(only boolean flags default to true/false).",
            )
    try:
        flag = services.flag_create(
            actor=request.user,
            key=key,
            name=_text(body, "name"),
            description=_text(body, "description"),
            tags=tags,
            type=flag_type,
            on_value=body.get("on_value"),
            off_value=body.get("off_value"),
        )
    except ValidationError as error:
        if _is_duplicate_key(error):
            raise _duplicate(key) from None
        raise
    except IntegrityError:
        # Two creates raced past validation; the unique index decided.
        if Flag.objects.filter(key=key).exists():
            raise _duplicate(key) from None
        raise
    return JsonResponse(_one_flag_json(flag.key), status=201)


def _is_duplicate_key(error: ValidationError) -> bool:
    errors = getattr(error, "error_dict", {})
    return any(e.code == "unique" for e in errors.get("key", []))


def _duplicate(key: str) -> ApiError:
    return ApiError(
        409,
        "flag_exists",
        f"A flag with key {key!r} already exists: read it at GET /api/v1/flags/{key}, "
        "or choose another key.",
    )


@api_endpoint(methods=("GET",))
def flag_detail(request: HttpRequest, key: str) -> HttpResponse:
    return JsonResponse(_one_flag_json(key))


@api_endpoint(methods=("GET", "PATCH"))
def flag_environment_state(request: HttpRequest, key: str, environment: str) -> HttpResponse:
    flag = selectors.flag_get(key)
    env = environment_get(environment)
    if request.method == "GET":
        state = FlagState.objects.filter(flag=flag, environment=env).select_related("updated_by")
        return JsonResponse(_changed_state_json(state.first(), flag, env))
    body = json_body(request)
    _only_fields(body, STATE_PATCH_FIELDS)
    version = _optional_version(body)
    reason = _text(body, "reason")
    try:
        state = services.flag_state_set(
            actor=request.user,
            flag=flag,
            environment=env,
            mode=body.get("mode"),
            percentage=body.get("percentage"),
            allowlist=body.get("allowlist"),
            expected_version=version,
            reason=reason,
        )
    except services.StaleEdit as stale:
        return _stale_response(stale)
    return JsonResponse(_changed_state_json(state, flag, env))


def _stale_response(stale: services.StaleEdit) -> JsonResponse:
    """409 with what is there now, so the caller can decide again without another read."""
    return JsonResponse(
        {
            "error": stale.code,
            "detail": stale.detail,
            "updated_by": stale.context.get("updated_by"),
            "current": stale.context.get("current"),
        },
        status=409,
    )


@api_endpoint(methods=("GET",))
def flag_history(request: HttpRequest, key: str) -> HttpResponse:
    flag = selectors.flag_get(key)
    slug = request.GET.get("environment", "").strip()
    env = environment_get(slug) if slug else None
    limit = _query_int(request, "limit", default=50, maximum=HISTORY_LIMIT)
    events = selectors.flag_history(flag, environment=env, limit=limit)
    return JsonResponse({"flag": flag.key, "events": [_event_json(e, flag) for e in events]})


@api_endpoint(methods=("POST",))
def flag_environment_restore(request: HttpRequest, key: str, environment: str) -> HttpResponse:
    body = json_body(request)
    _only_fields(body, RESTORE_FIELDS)
    event_id = body.get("event_id")
    if isinstance(event_id, bool) or not isinstance(event_id, int):
        raise ApiError(
            400,
            "invalid",
            "event_id: required, the id of an audit event from GET /api/v1/flags/{key}/history.",
        )
    side = _text(body, "side")
    if side not in ("", "before", "after"):
        raise ApiError(400, "invalid", 'side: must be "before" or "after".')
    version = _optional_version(body)
    reason = _text(body, "reason")
    flag = selectors.flag_get(key)
    env = environment_get(environment)
    event = AuditEvent.objects.filter(pk=event_id).first()
    if event is None:
        raise Http404(f"No audit event {event_id}")
    to = _restorable_state(event, flag, env, side)
    try:
        state = services.flag_state_restore(
            actor=request.user,
            flag=flag,
            environment=env,
            to=to,
            expected_version=version,
            reason=reason,
        )
    except services.StaleEdit as stale:
        return _stale_response(stale)
    return JsonResponse({**_changed_state_json(state, flag, env), "restored_from": event.pk})


def _restorable_state(
    event: AuditEvent, flag: Flag, environment: Environment, side: str
) -> dict[str, Any]:
    """The state an audit event recorded for this flag here: a change's after (or before),
    or what an engaged kill switch turned off."""

    def refuse(why: str) -> ApiError:
        return ApiError(400, "not_restorable", f"Audit event {event.pk} {why}.")

    if event.outcome != Outcome.OK:
        raise refuse("records a refused action: nothing changed then")
    if event.environment_id != environment.slug:
        raise refuse(f"is about {event.environment_id or 'no environment'}, not {environment.slug}")
    if event.action in selectors.STATE_CHANGE_ACTIONS:
        if event.target_type != "flag" or event.target_id != str(flag.pk):
            raise refuse(f"is about {event.target_name}, not {flag.key}")
    elif event.action == selectors.KILL_SWITCH_ENGAGE:
        if side == "after":
            raise refuse('is a kill switch: its "after" is off; restore its "before"')
        side = "before"
        if selectors.recorded_state(event, flag, side=side) is None:
            raise refuse(f"is a kill switch that did not turn {flag.key} off")
    else:
        raise refuse(f"is a {event.action}, not a change of a flag's state")
    state = selectors.recorded_state(event, flag, side=side or "after")
    if state is None:
        raise refuse("holds no flag state on that side")
    return state


@api_endpoint(methods=("POST",))
def environment_rollback(request: HttpRequest, environment: str) -> HttpResponse:
    body = json_body(request)
    _only_fields(body, ROLLBACK_FIELDS)
    reason = _text(body, "reason")
    env = environment_get(environment)
    result = services.environment_rollback(actor=request.user, environment=env, reason=reason)
    switch = result.switch
    if result.already_engaged:
        detail = (
            f"{env.slug} was already rolled back by {switch.engaged_by.username} at "
            f"{switch.engaged_at:%Y-%m-%d %H:%M:%S %Z}: nothing more to turn off."
        )
    else:
        detail = f"Rolled back {env.slug}: turned off {len(result.turned_off)} flag state(s)."
    return JsonResponse(
        {
            "environment": env.slug,
            "already_rolled_back": result.already_engaged,
            "turned_off": result.turned_off,
            "kill_switch": _kill_switch_json(switch),
            "detail": detail,
        }
    )


@login_not_required
def openapi_json(request: HttpRequest) -> HttpResponse:
    """The API's description, public like any API reference: it holds no data."""
    if request.method not in ("GET", "HEAD"):
        response = error_response(405, "method_not_allowed", "Use GET here.")
        response["Allow"] = "GET, HEAD"
        return response
    return JsonResponse(openapi_document(), json_dumps_params={"indent": 2})


urlpatterns = [
    path("openapi.json", openapi_json, name="api_openapi"),
    path("flags", flags_collection, name="api_flags"),
    path("flags/<str:key>", flag_detail, name="api_flag"),
    path("flags/<str:key>/history", flag_history, name="api_flag_history"),
    path(
        "flags/<str:key>/environments/<slug:environment>",
        flag_environment_state,
        name="api_flag_environment",
    ),
    path(
        "flags/<str:key>/environments/<slug:environment>/restore",
        flag_environment_restore,
        name="api_flag_environment_restore",
    ),
    path(
        "environments/<slug:environment>/rollback",
        environment_rollback,
        name="api_environment_rollback",
    ),
]
