"""`Idempotency-Key` for creating requests: the same key and request from the same account
answer the first result again; the same key with another request is a 409.

One mechanism for every app's creating POST: the handler passes the header's value, the
validated body and a function that does the work and returns (status, response schema).
The key's row is inserted first, in the transaction that creates the thing, so a concurrent
retry with the same key waits for the first to finish and then answers its result.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from django.db import IntegrityError, transaction
from django.http import HttpRequest, JsonResponse
from pydantic import BaseModel

from .errors import Conflict
from .models import IdempotencyKey, User

REPLAYED_HEADER = "Idempotent-Replayed"


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"


def _fingerprint(request: HttpRequest, body: BaseModel) -> str:
    sent = body.model_dump(mode="json", exclude_unset=True)
    canonical = json.dumps(
        [request.method, request.path, sent], sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def idempotent_create(
    request: HttpRequest,
    *,
    key: str | None,
    body: BaseModel,
    create: Callable[[], tuple[int, BaseModel]],
) -> tuple[int, BaseModel] | JsonResponse:
    """Run `create` once per (account, key); answer its stored result to a retry."""
    if key is None:
        return create()
    user: User = request.auth
    fingerprint = _fingerprint(request, body)
    with transaction.atomic():
        try:
            with transaction.atomic():
                record = IdempotencyKey.objects.create(user=user, key=key, fingerprint=fingerprint)
        except IntegrityError:
            return _replay(IdempotencyKey.objects.get(user=user, key=key), fingerprint)
        status, result = create()
        record.status, record.response = status, result.model_dump(mode="json")
        record.save(update_fields=["status", "response"])
    return status, result


def _replay(record: IdempotencyKey, fingerprint: str) -> JsonResponse:
    if record.fingerprint != fingerprint:
        raise IdempotencyKeyReused(
            f"Idempotency-Key {record.key!r} was first used with another request "
            f"({record.created_at:%Y-%m-%d %H:%M:%S %Z}): use a new key for a new request."
        )
    response: Any = JsonResponse(record.response, status=record.status, safe=False)
    response[REPLAYED_HEADER] = "true"
    return response
