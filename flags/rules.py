"""The semantics of a flag state: who gets the on-value, and whether a change reduces exposure.

Pure functions, no database: evaluation, the services and the policy's
exposure question all read them from here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import mmh3

MODES = ("off", "shadow", "allowlist", "percentage", "full")
MAX_ALLOWLIST = 10_000
MAX_TARGETING_KEY = 256


def bucket(flag_key: str, targeting_key: str) -> int:
    """Unleash's normalization: murmur3_32("<flag>:<key>", seed 0) % 100 + 1, in 1..100.

    Hashes the UTF-8 bytes: text that has none (a lone surrogate) raises UnicodeEncodeError
    here, where mmh3 given such a str would crash the process.
    """
    data = f"{flag_key}:{targeting_key}".encode()
    return mmh3.hash(data, 0, signed=False) % 100 + 1


def unusable_text(text: str) -> str | None:
    """Why text cannot be stored, hashed or recorded (NUL, a lone surrogate), else None."""
    if "\x00" in text:
        return "contains a NUL character"
    try:
        text.encode()
    except UnicodeEncodeError:
        return "contains a lone surrogate (text that is not valid Unicode)"
    return None


def in_percentage(flag_key: str, targeting_key: str, percentage: int) -> bool:
    return percentage > 0 and bucket(flag_key, targeting_key) <= percentage


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def values_need_acceptance(flag_type: str, *, production: bool) -> bool:
    """A non-boolean flag's values reach production only once a person with production rights
    accepted them (a boolean's are always true/false)."""
    return production and flag_type != "boolean"


def values_served(
    *,
    flag_type: str,
    production: bool,
    accepted: tuple[Any, Any] | None,
    on_value: Any,
    off_value: Any,
) -> bool:
    """Whether evaluation answers with the flag's values here; otherwise FLAG_NOT_FOUND, so
    callers keep their code default. Accepted values count only while they are exactly the
    flag's values."""
    if not values_need_acceptance(flag_type, production=production):
        return True
    return accepted is not None and canonical_json(list(accepted)) == canonical_json(
        [on_value, off_value]
    )


@dataclass(frozen=True)
class StateValue:
    """What a flag state says, independent of how it is stored."""

    mode: str = "off"
    percentage: int = 0
    allowlist: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def of(cls, mode: str, percentage: int, allowlist: Iterable[str]) -> StateValue:
        return cls(mode, percentage, frozenset(allowlist))

    def as_dict(self) -> dict:
        return {
            "mode": self.mode,
            "percentage": self.percentage,
            "allowlist": sorted(self.allowlist),
        }


def reduces_exposure(before: StateValue, after: StateValue) -> bool:
    """True when the set of targeting keys that get the on-value can only shrink.

    To off or shadow from anything; full to anything; otherwise a percentage no
    higher and an allowlist that is a subset (an allowlist-only state counts as 0%).
    """
    if after.mode in ("off", "shadow") or before.mode == "full":
        return True
    if after.mode == "full":
        return False
    if before.mode in ("off", "shadow"):
        # Nothing was on: only a state that still turns nobody on does not increase.
        return not after.allowlist and (after.mode == "allowlist" or after.percentage == 0)
    before_pct = before.percentage if before.mode == "percentage" else 0
    after_pct = after.percentage if after.mode == "percentage" else 0
    return after_pct <= before_pct and after.allowlist <= before.allowlist


def clean_allowlist(values: object) -> list[str]:
    """Validate and normalise an allowlist: distinct non-empty strings, sorted."""
    if not isinstance(values, list | tuple):
        raise ValueError("allowlist must be a list of targeting keys")
    keys = set()
    for value in values:
        if not isinstance(value, str) or not value.strip():
            raise ValueError("each allowlist entry must be a non-empty string")
        if len(value) > MAX_TARGETING_KEY:
            raise ValueError(f"allowlist entries are at most {MAX_TARGETING_KEY} characters")
        keys.add(value.strip())
    if len(keys) > MAX_ALLOWLIST:
        raise ValueError(f"an allowlist holds at most {MAX_ALLOWLIST} keys")
    return sorted(keys)
