"""Bearer credentials (personal API tokens, environment SDK keys): random, shown once, kept
only as a SHA-256 digest (fast, since one is checked on every request)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

HINT_CHARS = 4  # after the prefix: enough for a person to tell their credentials apart


def digest_of(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True)
class NewCredential:
    raw: str  # shown once, never stored
    digest: str
    hint: str


def credential_new(prefix: str) -> NewCredential:
    raw = prefix + secrets.token_urlsafe(32)
    return NewCredential(raw, digest_of(raw), raw[: len(prefix) + HINT_CHARS])
