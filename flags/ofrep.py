"""OpenFeature Remote Evaluation Protocol: POST /ofrep/v1/evaluate/flags[/{key}].

Authorised by an environment's SDK key (`Authorization: Bearer <key>` or `X-API-Key`).
Errors are {"errorCode", "errorDetails"} (with "key" for a flag's errors): FLAG_NOT_FOUND
404, PARSE_ERROR / INVALID_CONTEXT / TARGETING_KEY_MISSING 400, 401 without a valid key,
429 with Retry-After (whole seconds) over OFREP_RATE_LIMIT_PER_SECOND.

The hot path touches neither sessions nor the ORM while the process's snapshot is fresh
(flags/evaluation.py): a dictionary lookup for the key, one json.loads for the body and
answers serialised in advance.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from .evaluation import (
    EnvironmentSnapshot,
    TargetingKeyMissing,
    evaluate_json,
    store,
)
from .rules import unusable_text

JSON = "application/json"


def _error(status: int, code: str, details: str, *, key: str | None = None) -> HttpResponse:
    body: dict[str, Any] = {"key": key} if key is not None else {}
    body.update(errorCode=code, errorDetails=details)
    response = HttpResponse(
        json.dumps(body, separators=(",", ":")), content_type=JSON, status=status
    )
    response["Cache-Control"] = "no-store"
    # These are answers of the protocol (an SDK asking for a flag it does not know is
    # ordinary): keep them out of django.request's per-response warnings.
    response._has_been_logged = True
    return response


class OfrepError(Exception):
    def __init__(
        self, status: int, code: str, details: str, *, key: str | None = None, retry_after: int = 0
    ) -> None:
        super().__init__(details)
        self.status, self.code, self.details, self.key = status, code, details, key
        self.retry_after = retry_after

    def response(self) -> HttpResponse:
        response = _error(self.status, self.code, self.details, key=self.key)
        if self.status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="ofrep"'
        if self.retry_after:
            response["Retry-After"] = str(self.retry_after)
        return response


# --- Rate limit -----------------------------------------------------------------------------


class RateLimiter:
    """A token bucket per SDK key, in this process only (each worker counts on its own)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()

    def retry_after(self, key: str, per_second: float) -> int:
        """0 when the request may go ahead, else whole seconds until a token is back."""
        now = time.monotonic()
        capacity = max(per_second, 1.0)  # one second's worth of burst
        with self._lock:
            tokens, at = self._buckets.get(key, (capacity, now))
            tokens = min(capacity, tokens + (now - at) * per_second)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return 0
            self._buckets[key] = (tokens, now)
        return max(1, math.ceil((1 - tokens) / per_second))


rate_limiter = RateLimiter()


# --- Request plumbing -----------------------------------------------------------------------


def _sdk_key(request: HttpRequest) -> str:
    authorization = request.META.get("HTTP_AUTHORIZATION", "")
    if authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return request.META.get("HTTP_X_API_KEY", "").strip()


def _authenticate(request: HttpRequest) -> EnvironmentSnapshot:
    raw_key = _sdk_key(request)
    try:
        environment = store.environment_for_key(raw_key)
    except DatabaseError:
        raise OfrepError(
            503, "GENERAL", "Flag data is unavailable right now; retry shortly."
        ) from None
    if environment is None:
        raise OfrepError(
            401,
            "GENERAL",
            "Send a valid SDK key for the environment: Authorization: Bearer <key> "
            "(or X-API-Key: <key>). `manage.py issue_sdk_key ENVIRONMENT` makes one.",
        )
    per_second = settings.OFREP_RATE_LIMIT_PER_SECOND
    if per_second > 0:
        wait = rate_limiter.retry_after(raw_key, per_second)
        if wait:
            raise OfrepError(
                429,
                "GENERAL",
                f"More than {per_second:g} evaluations per second with this key: "
                f"retry after {wait} s.",
                retry_after=wait,
            )
    return environment


# Contexts nest (OpenFeature allows objects and lists): deeper than this is refused.
MAX_CONTEXT_DEPTH = 32


def _refuse_constant(name: str) -> Any:
    raise OfrepError(400, "PARSE_ERROR", f"{name} is not a JSON number: send finite numbers.")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise OfrepError(400, "PARSE_ERROR", f"{text} is outside the range of a JSON number.")
    return value


def _parse(raw: bytes) -> Any:
    try:
        # Strict UTF-8 first: json.loads would decode bytes with surrogatepass.
        text = raw.decode()
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except (ValueError, UnicodeDecodeError) as exc:
        raise OfrepError(400, "PARSE_ERROR", f"The body is not valid JSON: {exc}") from None
    except RecursionError:
        raise OfrepError(400, "PARSE_ERROR", "The body nests too deeply.") from None


def _place(where: str, step: str) -> str:
    # Named in the error; bounded, so a huge key is not echoed back.
    return (where + step)[:120]


def _check_context(context: dict[str, Any], *, escaped: bool) -> None:
    """Every string in the context (keys too) must be text that can be hashed and recorded,
    and the context no deeper than MAX_CONTEXT_DEPTH.

    NUL and lone surrogates can only arrive as \\u escapes (the body is decoded as strict
    UTF-8, and raw control characters are not JSON), so without one only the depth is walked.
    """
    pending: list[tuple[Any, str, int]] = [(context, "context", 1)]
    while pending:
        value, where, depth = pending.pop()
        if isinstance(value, str):
            problem = unusable_text(value) if escaped else None
            if problem:
                raise OfrepError(400, "INVALID_CONTEXT", f"{where} {problem}.")
            continue
        if not isinstance(value, dict | list):
            continue
        if depth > MAX_CONTEXT_DEPTH:
            raise OfrepError(
                400, "INVALID_CONTEXT", f"context nests deeper than {MAX_CONTEXT_DEPTH} levels."
            )
        if isinstance(value, list):
            pending.extend(
                (item, _place(where, f"[{i}]"), depth + 1) for i, item in enumerate(value)
            )
            continue
        for name, item in value.items():
            problem = unusable_text(name) if escaped else None
            if problem:
                raise OfrepError(400, "INVALID_CONTEXT", f"a key in {where} {problem}.")
            pending.append((item, _place(where, f".{name}"), depth + 1))


def _targeting_key(request: HttpRequest) -> str | None:
    """The context's targetingKey (None when absent or empty), after checking the body."""
    try:
        raw = request.body
    except RequestDataTooBig:
        raise OfrepError(
            413, "PARSE_ERROR", "The body is too large: send the evaluation context only."
        ) from None
    if not raw.strip():
        return None
    # The edge check already parsed the body strictly: parse it here only when it did not.
    body = getattr(request, "strict_json", None)
    if body is None:
        body = _parse(raw)
    if not isinstance(body, dict):
        raise OfrepError(400, "PARSE_ERROR", 'The body must be a JSON object: {"context": {}}.')
    context = body.get("context")
    if context is None:
        return None
    if not isinstance(context, dict):
        raise OfrepError(400, "INVALID_CONTEXT", "context must be a JSON object.")
    _check_context(context, escaped=b"\\u" in raw)
    targeting_key = context.get("targetingKey")
    if targeting_key is None:
        return None
    if not isinstance(targeting_key, str):
        raise OfrepError(400, "INVALID_CONTEXT", "context.targetingKey must be a string.")
    return targeting_key or None


def ofrep_endpoint(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """POST only, no CSRF (there is no cookie), no sign-in (the SDK key is the credential)."""

    @csrf_exempt
    @login_not_required
    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method != "POST":
            response = _error(405, "GENERAL", 'Use POST with a JSON body: {"context": {...}}.')
            response["Allow"] = "POST"
            return response
        try:
            return view(request, *args, **kwargs)
        except OfrepError as error:
            return error.response()

    return wrapper


# --- Endpoints ------------------------------------------------------------------------------


@ofrep_endpoint
def evaluate_flag(request: HttpRequest, key: str) -> HttpResponse:
    """One flag for one evaluation context (server-side providers)."""
    environment = _authenticate(request)
    targeting_key = _targeting_key(request)
    flag = environment.flags.get(key)
    if flag is None:
        raise OfrepError(404, "FLAG_NOT_FOUND", f"No flag {key!r} in {environment.slug}.", key=key)
    try:
        body = evaluate_json(flag, environment, targeting_key)
    except TargetingKeyMissing as missing:
        raise OfrepError(400, "TARGETING_KEY_MISSING", str(missing), key=key) from None
    response = HttpResponse(body, content_type=JSON)
    response["Cache-Control"] = "no-store"
    return response


def etag_for(environment: EnvironmentSnapshot, targeting_key: str | None) -> str:
    """Changes with the environment's flags version and with the context.

    Only the targeting key of the context decides any answer, so only it goes into the tag:
    two contexts that differ elsewhere get the same answer, and so the same tag.
    """
    seed = f"{environment.id}:{environment.version}:{targeting_key or ''}".encode()
    return '"' + hashlib.blake2b(seed, digest_size=12).hexdigest() + '"'


def _matches(if_none_match: str, etag: str) -> bool:
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == etag:
            return True
    return False


@ofrep_endpoint
def evaluate_flags(request: HttpRequest) -> HttpResponse:
    """Every (unarchived) flag of the key's environment for one context, with an ETag."""
    environment = _authenticate(request)
    targeting_key = _targeting_key(request)
    etag = etag_for(environment, targeting_key)
    if _matches(request.META.get("HTTP_IF_NONE_MATCH", ""), etag):
        response = HttpResponse(status=304)
    else:
        response = HttpResponse(environment.bulk_body(targeting_key), content_type=JSON)
    response["ETag"] = etag
    # Clients may keep the answer but must ask (If-None-Match) before using it again.
    response["Cache-Control"] = "private, no-cache"
    return response


urlpatterns = [
    path("evaluate/flags", evaluate_flags, name="ofrep_evaluate_flags"),
    # <path:...>: any key, even one with a slash, gets FLAG_NOT_FOUND in OFREP's shape.
    path("evaluate/flags/<path:key>", evaluate_flag, name="ofrep_evaluate_flag"),
]


class OfrepMiddleware:
    """Serves /ofrep/v1/evaluate/flags[/{key}] without the page middleware below it.

    OFREP authenticates by SDK key, sets no cookie and renders no page, so sessions, CSRF,
    sign-in, messages, clickjacking, htmx and django-axes have nothing to do for it. Place it
    after SecurityMiddleware (HTTPS redirect, HSTS, nosniff, referrer policy) and
    RequestContextMiddleware (X-Request-ID), before SessionMiddleware. The host is still
    checked against ALLOWED_HOSTS, as CommonMiddleware would. Every other path goes down the
    whole stack. The same views are also in `urlpatterns` (reverse(), a stack without this).
    """

    PREFIX = "/ofrep/v1/evaluate/flags"

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path_info = request.path_info
        if not path_info.startswith(self.PREFIX):
            return self.get_response(request)
        rest = path_info[len(self.PREFIX) :]
        if rest and (rest[0] != "/" or len(rest) == 1):
            return self.get_response(request)  # not ours: the URL resolver answers 404
        request.get_host()  # DisallowedHost (400) for a host not in ALLOWED_HOSTS
        response = evaluate_flag(request, rest[1:]) if rest else evaluate_flags(request)
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response
