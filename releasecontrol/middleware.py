"""The site's own middleware: refuse unusable input at the edge, give every request an id
(kept from X-Request-ID when sane) and note the client address, send expired htmx sessions
to sign in."""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import TooManyFieldsSent
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.template.loader import render_to_string

from .context import (
    RequestContext,
    normalise_client_ip,
    reset_request_context,
    set_request_context,
)
from .validation import (
    InvalidInput,
    check_text,
    check_urlencoded,
    json_loads_strict,
)

_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def client_ip_of(request: HttpRequest) -> str | None:
    """The client's address for audit events and sign-in throttling, normalised as the
    database stores it; None when there is no usable address (never an error)."""
    if settings.USE_X_FORWARDED_FOR:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        # The last entry is the one our own proxy appended; the rest can be forged. One that
        # is not an address (a misconfigured proxy) falls back to the peer's address.
        address = normalise_client_ip(forwarded.split(",")[-1]) if forwarded else None
        if address:
            return address
    return normalise_client_ip(request.META.get("REMOTE_ADDR"))


class RequestContextMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.META.get("HTTP_X_REQUEST_ID", "")
        request_id = incoming if _SANE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        token = set_request_context(RequestContext(request_id, client_ip_of(request)))
        try:
            response = self.get_response(request)
        finally:
            reset_request_context(token)
        response["X-Request-ID"] = request_id
        return response


class HtmxLoginRedirectMiddleware:
    """An htmx request whose session expired gets a full-page redirect to sign in, not the
    login form swapped into a table cell."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            request.headers.get("HX-Request") == "true"
            and response.status_code == 302
            and not request.user.is_authenticated
        ):
            location = response["Location"]
            response = HttpResponse(status=204)
            response["HX-Redirect"] = location
        return response


# --- Input the site refuses at the edge ------------------------------------------------------

OFREP_FLAG_PREFIX = "/ofrep/v1/evaluate/flags/"
JSON_PATH_PREFIXES = ("/api/", "/ofrep/")


class RequestTooLarge(Exception):
    pass


def _wsgi_bytes(value: str) -> bytes:
    # WSGI carries the raw bytes of the path and query string as Latin-1 text.
    try:
        return value.encode("iso-8859-1")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogatepass")


def _is_json_path(path: str) -> bool:
    return path.startswith(JSON_PATH_PREFIXES) or path in ("/api", "/ofrep")


class InputValidationMiddleware:
    """Refuses input that no part of the site can take (releasecontrol/validation.py) before
    any other middleware or view sees it: the path, the query string, urlencoded and multipart
    form fields, and JSON bodies (every key and value at any depth), and bodies over
    DATA_UPLOAD_MAX_MEMORY_SIZE (413).

    /api/ answers {"error", "detail"}; /ofrep/ answers in OFREP's error shape; pages get a
    small HTML page. A JSON body it parsed is handed on as `request.strict_json` (absent when
    the body is empty or not JSON at all: the view's own parser then says why).
    Place it first after SecurityMiddleware.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            self.check(request)
        except InvalidInput as error:
            return refusal(request, 400, "invalid_input", error)
        except RequestTooLarge:
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            error = InvalidInput("the body", f"is larger than {limit:,} bytes: send less")
            return refusal(request, 413, "too_large", error)
        return self.get_response(request)

    def check(self, request: HttpRequest) -> None:
        # Django has already decoded the path, re-escaping bytes that are not UTF-8 (%FF stays
        # "%FF"), so only NUL can be left in it.
        check_text(request.path_info, "the path")
        query = request.META.get("QUERY_STRING", "")
        if query:
            check_urlencoded(
                _wsgi_bytes(query),
                "query parameter",
                max_fields=settings.DATA_UPLOAD_MAX_NUMBER_FIELDS,
            )
        length = _content_length(request)
        if length == 0:
            return
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is not None and length > limit:
            raise RequestTooLarge
        content_type = request.content_type or ""
        if _is_json_path(request.path_info) or content_type.endswith(("/json", "+json")):
            body = request.body
            if body.strip():
                # Not JSON at all: the view's own parser answers that, in its own words.
                with contextlib.suppress(json.JSONDecodeError):
                    request.strict_json = json_loads_strict(body, where="the JSON body")
        elif content_type == "application/x-www-form-urlencoded":
            check_urlencoded(
                request.body, "form field", max_fields=settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
            )
        elif content_type == "multipart/form-data":
            _check_multipart(request)


def _content_length(request: HttpRequest) -> int:
    raw = request.META.get("CONTENT_LENGTH") or "0"
    try:
        length = int(raw)
    except ValueError:
        raise InvalidInput("the Content-Length header", "is not a number") from None
    if length < 0:
        raise InvalidInput("the Content-Length header", "is negative")
    return length


def _check_multipart(request: HttpRequest) -> None:
    try:
        fields, files = request.POST, request.FILES
    except (MultiPartParserError, TooManyFieldsSent) as error:
        raise InvalidInput("the form", f"could not be read: {error}") from None
    for name, values in fields.lists():
        check_text(name, "a form field name")
        for value in values:
            check_text(value, f"form field {name[:80]!r}")
    for name, uploads in files.lists():
        check_text(name, "a form field name")
        for upload in uploads:
            check_text(upload.name or "", f"the file name in {name[:80]!r}")


def refusal(request: HttpRequest, status: int, code: str, error: InvalidInput) -> HttpResponse:
    """The answer to refused input, in the shape the path's clients read."""
    detail = str(error)
    path = request.path_info
    if path.startswith("/ofrep/"):
        body: dict[str, str] = {}
        if path.startswith(OFREP_FLAG_PREFIX):
            key = path[len(OFREP_FLAG_PREFIX) :]
            body["key"] = key.encode("utf-8", "replace").decode().replace("\x00", "\ufffd")
        body["errorCode"] = "INVALID_CONTEXT" if error.text and status == 400 else "PARSE_ERROR"
        body["errorDetails"] = detail
        response: HttpResponse = JsonResponse(body, status=status)
        # Like OFREP's own errors: an answer of the protocol, not a warning per request.
        response._has_been_logged = True
    elif _is_json_path(path):
        response = JsonResponse({"error": code, "detail": detail}, status=status)
    else:
        title = "Too much data" if status == 413 else "This input cannot be used"
        html = render_to_string(
            "releasecontrol/invalid_input.html", {"title": title, "detail": detail}
        )
        response = HttpResponse(html, status=status)
    response["Cache-Control"] = "no-store"
    return response
