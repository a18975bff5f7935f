"""The JSON API's plumbing: bearer personal API tokens, JSON errors, no sessions, no CSRF.

Errors are {"error": code, "detail": text} with 400/401/403/404/405/409.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from .errors import Conflict
from .services import api_token_authenticate


class ApiError(Exception):
    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


def error_response(status: int, code: str, detail: str) -> JsonResponse:
    response = JsonResponse({"error": code, "detail": detail}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


def validation_detail(error: ValidationError) -> str:
    if hasattr(error, "message_dict"):
        return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in error.message_dict.items())
    return " ".join(error.messages)


def bearer_credential(request: HttpRequest) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, credential = header.partition(" ")
    return credential.strip() if scheme.lower() == "bearer" else ""


def json_body(request: HttpRequest) -> dict[str, Any]:
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_json", f"The body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "The body must be a JSON object.")
    return body


def api_endpoint(methods: tuple[str, ...]) -> Callable:
    """Authenticate the bearer token, allow only `methods`, turn failures into JSON errors."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @csrf_exempt
        @login_not_required
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in methods:
                response = error_response(
                    405, "method_not_allowed", f"Use {' or '.join(methods)} here."
                )
                response["Allow"] = ", ".join(methods)
                return response
            user = api_token_authenticate(bearer_credential(request))
            if user is None:
                return error_response(
                    401,
                    "unauthenticated",
                    "Send a valid personal API token: Authorization: Bearer <token>.",
                )
            request.user = user
            try:
                return view(request, *args, **kwargs)
            except ApiError as exc:
                return error_response(exc.status, exc.code, exc.detail)
            except Conflict as exc:
                return error_response(409, exc.code, exc.detail)
            except ValidationError as exc:
                return error_response(400, "invalid", validation_detail(exc))
            except PermissionDenied as exc:
                return error_response(403, "forbidden", str(exc) or "Refused.")
            except Http404 as exc:
                return error_response(404, "not_found", str(exc) or "Not found.")

        return wrapper

    return decorate
