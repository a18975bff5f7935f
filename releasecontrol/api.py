"""The site's JSON API: one django-ninja `NinjaAPI` at /api/v1/, each app adding its `Router`
(in its AppConfig.ready(), through `api_router_add`).

Bearer personal API tokens, no sessions, no CSRF. Every error, whatever raised it, is
{"error": code, "detail": text} (a 409 may add fields, such as a stale edit's current state),
with 400/401/403/404/405/409: validation errors are 400 naming each field (never ninja's 422),
unknown paths under /api/ answer a JSON 404 and wrong methods a JSON 405.

Import this module only after settings are configured: ninja reads NINJA_* settings at import.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.urls import URLPattern, URLResolver, path, register_converter
from django.views.decorators.csrf import csrf_exempt
from ninja import NinjaAPI, Router
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.parser import Parser
from ninja.security import HttpBearer

from . import selectors
from .errors import Conflict
from .schemas import ERRORS_READ, MeOut
from .services import api_token_authenticate

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v1/"
UNAUTHENTICATED_DETAIL = "Send a valid personal API token: Authorization: Bearer <token>."
# Hints for required fields whose absence has a reason worth saying.
REQUIRED_HINTS = {
    "version": "required: read the current state first and send the version you read "
    "(no blind writes).",
}


class ApiError(Exception):
    """An answer a handler gives on purpose: status, code and what to do about it."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


def error_response(status: int, code: str, detail: str, **extra: Any) -> JsonResponse:
    response = JsonResponse({"error": code, "detail": detail, **extra}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


def validation_detail(error: DjangoValidationError) -> str:
    if hasattr(error, "message_dict"):
        return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in error.message_dict.items())
    return " ".join(error.messages)


# --- Authentication and parsing -----------------------------------------------------------


class PersonalToken(HttpBearer):
    """`Authorization: Bearer <personal API token>` (`manage.py issue_token NAME`)."""

    def authenticate(self, request: HttpRequest, token: str) -> Any:
        user = api_token_authenticate(token.strip())
        if user is not None:
            request.user = user
        return user


class JsonObjectParser(Parser):
    """Bodies are JSON; anything else says so (the ValidationError handler answers a body
    that is JSON but not an object)."""

    def parse_body(self, request: HttpRequest) -> Any:
        try:
            return json.loads(request.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, "invalid_json", f"The body is not valid JSON: {exc}") from None


class ReleaseControlApi(NinjaAPI):
    def get_openapi_operation_id(self, operation: Any) -> str:
        return operation.view_func.__name__  # flag_list, flag_state_set...

    def validation_error_from_error_contexts(self, error_contexts: list) -> NinjaValidationError:
        """Note, beside each error, the fields its model accepts (to name them when a body
        carries one it does not)."""
        error = super().validation_error_from_error_contexts(error_contexts)
        accepted: dict[tuple, list[str]] = {}
        for context in error_contexts:
            source = context.model.__ninja_param_source__
            for name, field in context.model.model_fields.items():
                inner = getattr(field.annotation, "model_fields", None)
                if inner is not None:
                    accepted[(source, name)] = [f.alias or n for n, f in inner.items()]
        for item in error.errors:
            if item.get("type") == "extra_forbidden":
                item["accepted"] = accepted.get(tuple(item["loc"][:2]), [])
        return error


api = ReleaseControlApi(
    title="Release Control API",
    version="1",
    description="Flags, their state per environment and rollback, for agents and scripts. "
    "Authenticate with a personal API token (`manage.py issue_token NAME`): "
    "`Authorization: Bearer <token>`. Every write goes through the same policy and audit "
    'trail as the web pages. Errors are `{"error": code, "detail": text}`; validation '
    "errors are 400 with `detail` naming each field.",
    auth=PersonalToken(),
    parser=JsonObjectParser(),
    urls_namespace="api",
    openapi_url=None,  # served below: GET only, no token
    docs_url=None,  # no Swagger UI: it would load from a CDN these machines cannot reach
)


def api_router_add(prefix: str, router: Router) -> None:
    """How an app plugs its endpoints in (from its AppConfig.ready())."""
    api.add_router(prefix, router)


def api_response(request: HttpRequest, data: Any, status: int = 200) -> HttpResponse:
    """An answer already in its schema's shape, rendered as the API renders every answer,
    without validating it again (for answers of thousands of items built by our code)."""
    return api.create_response(request, data, status=status)


# --- Errors -----------------------------------------------------------------------------------


def _field_name(loc: Iterable[Any]) -> str:
    """("body", "payload", "allowlist", 2) -> "allowlist[2]"; ("query", "limit") -> "limit"."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    if parts and parts[0] == "payload":
        parts = parts[1:]
    name = ""
    for part in parts:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name


def _validation_answer(errors: list[dict[str, Any]]) -> tuple[str, str]:
    unknown = [e for e in errors if e.get("type") == "extra_forbidden"]
    if unknown:
        names = sorted({_field_name(e["loc"]) for e in unknown})
        accepted = unknown[0].get("accepted") or []
        allowed = f" Send only: {', '.join(accepted)}." if accepted else ""
        return "unknown_field", f"Unknown field(s): {', '.join(names)}.{allowed}"
    parts = []
    for error in errors:
        name = _field_name(error["loc"])
        if not name and error["loc"][:1] == ("body",):
            return "invalid_json", "The body must be a JSON object, e.g. {}."
        if error.get("type") == "missing":
            message = REQUIRED_HINTS.get(name, "required.")
        else:
            message = error["msg"][0].lower() + error["msg"][1:].rstrip(".") + "."
        parts.append(f"{name}: {message}" if name else message)
    return "invalid", " ".join(parts)


def _on_validation_error(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
    code, detail = _validation_answer(exc.errors)
    return error_response(400, code, detail)


def _on_http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    if isinstance(exc.__cause__, ApiError):  # the parser's, wrapped by ninja
        return _on_api_error(request, exc.__cause__)
    if isinstance(exc, AuthenticationError):
        return error_response(401, "unauthenticated", UNAUTHENTICATED_DETAIL)
    codes = {400: "invalid", 403: "forbidden", 404: "not_found", 409: "conflict"}
    return error_response(exc.status_code, codes.get(exc.status_code, "error"), exc.message)


def _on_api_error(request: HttpRequest, exc: ApiError) -> HttpResponse:
    return error_response(exc.status, exc.code, exc.detail)


def _on_conflict(request: HttpRequest, exc: Conflict) -> HttpResponse:
    return error_response(409, exc.code, exc.detail, **exc.context)


def _on_django_validation_error(request: HttpRequest, exc: DjangoValidationError) -> HttpResponse:
    return error_response(400, "invalid", validation_detail(exc))


def _on_permission_denied(request: HttpRequest, exc: PermissionDenied) -> HttpResponse:
    return error_response(403, "forbidden", str(exc) or "Refused.")


def _on_not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return error_response(404, "not_found", str(exc) or "Not found.")


def _on_unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
    logger.exception("api.error", extra={"path": request.path})
    return error_response(
        500, "server_error", "Something went wrong on our side; the request id names it."
    )


for _exception, _handler in (
    (NinjaValidationError, _on_validation_error),
    (HttpError, _on_http_error),
    (ApiError, _on_api_error),
    (Conflict, _on_conflict),
    (DjangoValidationError, _on_django_validation_error),
    (PermissionDenied, _on_permission_denied),
    (Http404, _on_not_found),
    (Exception, _on_unexpected),
):
    api.add_exception_handler(_exception, _handler)


# --- The core's own endpoints ------------------------------------------------------------------

core_router = Router(tags=["account"])


@core_router.get(
    "/me",
    response={200: MeOut, **ERRORS_READ},
    url_name="me",
    summary="Who the token belongs to",
)
def me(request: HttpRequest) -> dict[str, Any]:
    user = request.auth
    grants = selectors.role_grants_for_user(user)
    return {
        "username": user.username,
        "kind": user.kind,
        "roles": [{"role": g.role, "environment": g.environment.slug} for g in grants],
    }


api_router_add("", core_router)


# --- URLs -------------------------------------------------------------------------------------


def _json_not_allowed(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Ninja answers a wrong method in plain text: answer it as every other API error."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        if isinstance(response, HttpResponseNotAllowed):
            allowed = response["Allow"]
            response = error_response(
                405, "method_not_allowed", f"Use {' or '.join(allowed.split(', '))} here."
            )
            response["Allow"] = allowed
        return response

    wrapper.login_required = False  # the token is the credential, not a session
    return wrapper


@csrf_exempt
@login_not_required
def openapi_json(request: HttpRequest) -> HttpResponse:
    """The API's description, generated from its schemas; public like any API reference."""
    if request.method not in ("GET", "HEAD"):
        response = error_response(405, "method_not_allowed", "Use GET here.")
        response["Allow"] = "GET, HEAD"
        return response
    return JsonResponse(openapi_document(), json_dumps_params={"indent": 2})


@functools.cache
def openapi_document() -> dict[str, Any]:
    # A round trip through JSON: plain dicts and lists all the way down.
    return json.loads(json.dumps(api.get_openapi_schema(path_prefix=API_PREFIX.rstrip("/"))))


@csrf_exempt
@login_not_required
def not_found(request: HttpRequest, rest: str = "") -> HttpResponse:
    return error_response(
        404, "not_found", f"No API endpoint at {request.path}: see {API_PREFIX}openapi.json."
    )


def api_urls() -> list[URLPattern | URLResolver]:
    """The API's routes, for the site's urls.py to include at api/v1/."""
    patterns, _, _ = api.urls
    routes: list[URLPattern | URLResolver] = [path("openapi.json", openapi_json, name="openapi")]
    seen = set()
    for pattern in patterns:
        # Ninja adds one pattern per operation; the view behind them dispatches by method.
        route = str(pattern.pattern)
        if isinstance(pattern, URLPattern) and pattern.name != "api-root" and route not in seen:
            seen.add(route)
            pattern.callback = _json_not_allowed(pattern.callback)
            routes.append(pattern)
    return routes


class AnyPathConverter:
    """Anything, newlines included (the `path` converter's `.+` stops at one)."""

    regex = r"[\s\S]*"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(AnyPathConverter, "anypath")

# Anything under /api/ that no endpoint serves (included after the API's own routes).
not_found_urls = [
    path("api", not_found, name="api_root"),
    path("api/<anypath:rest>", not_found, name="api_not_found"),
]
