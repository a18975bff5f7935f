"""What the site accepts at all, checked once at the edge before anything is authorized or
recorded: text without NUL or lone surrogates, valid UTF-8, and JSON without NaN, Infinity,
numbers beyond a 64-bit float or nesting deeper than MAX_JSON_DEPTH.

Such input cannot be stored faithfully (PostgreSQL refuses NUL in text and jsonb, UTF-8 has
no surrogates, jsonb has no NaN) or breaks what reads it (mmh3 on a lone surrogate, recursion
on deep nesting), so it is refused with a 400 that names where it was, instead of failing
half-way through an action.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any
from urllib.parse import unquote_to_bytes

MAX_JSON_DEPTH = 64
# Beyond this many digits an integer is outside a 64-bit float's range (about 1.8e308).
MAX_INTEGER_DIGITS = 309
_NOT_TEXT = re.compile("[\x00\ud800-\udfff]")
_LONG_DIGITS = re.compile(rf"\d{{{MAX_INTEGER_DIGITS + 1}}}")


class InvalidInput(ValueError):
    """Input the site refuses; `where` names the field or parameter, `problem` what is wrong."""

    def __init__(self, where: str, problem: str, *, text: bool = False) -> None:
        super().__init__(f"{where} {problem}" if where else problem)
        self.where, self.problem = where, problem
        self.text = text  # True: a string's content (NUL, surrogate), not the format


def text_problem(value: str) -> str | None:
    """Why this text cannot be taken, or None when it can."""
    found = _NOT_TEXT.search(value)
    if found is None:
        return None
    if found.group() == "\x00":
        return "contains a NUL character (\\u0000): remove it"
    return "contains a lone surrogate (\\ud800-\\udfff), which is not Unicode text: remove it"


def check_text(value: str, where: str) -> str:
    problem = text_problem(value)
    if problem:
        raise InvalidInput(where, problem, text=True)
    return value


def decode_utf8(raw: bytes, where: str) -> str:
    """Strict UTF-8 (which also refuses encoded surrogates), without NUL."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(where, "is not valid UTF-8: send UTF-8 text") from None
    return check_text(text, where)


def _refuse_constant(name: str) -> Any:
    raise InvalidInput("", f"holds {name}, which is not a JSON number: send a finite number")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InvalidInput("", f"holds {text}, outside the range of a 64-bit float (±1.8e308)")
    return value


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise InvalidInput(
            "", f"holds a {len(text.lstrip('-'))}-digit number, outside a 64-bit float's range"
        )
    return int(text)


def json_loads_strict(data: bytes | str, *, where: str = "the JSON") -> Any:
    """json.loads that refuses what cannot be stored or read back faithfully.

    Raises InvalidInput (a ValueError) for invalid UTF-8, NUL, lone surrogates (also as
    \\u escapes), NaN, Infinity, numbers outside a float's range and nesting deeper than
    MAX_JSON_DEPTH; json.JSONDecodeError (also a ValueError) for text that is not JSON.
    """
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")  # strict: no encoded surrogates either
        except UnicodeDecodeError:
            raise InvalidInput(where, "is not valid UTF-8: send UTF-8 text") from None
    else:
        text = check_text(data, where)
    long_numbers = _LONG_DIGITS.search(text) is not None
    try:
        value = json.loads(
            text,
            parse_float=_float,
            parse_int=_int if long_numbers else None,
            parse_constant=_refuse_constant,
        )
    except RecursionError:
        raise InvalidInput(where, f"is nested deeper than {MAX_JSON_DEPTH} levels") from None
    except InvalidInput as error:
        raise InvalidInput(where, error.problem, text=error.text) from None
    # The common case stays cheap: a raw NUL is not JSON (json.loads refuses control
    # characters), so NUL and surrogates can only come from \u escapes; and a text with at
    # most MAX_JSON_DEPTH brackets cannot nest deeper.
    if "\\u" in text or text.count("[") + text.count("{") > MAX_JSON_DEPTH:
        check_json_value(value, where)
    return value


def check_json_value(value: Any, where: str = "the JSON") -> None:
    """Every key and string at any depth is text; nesting stays within MAX_JSON_DEPTH."""
    stack: list[tuple[Any, int, str]] = [(value, 1, "")]
    while stack:
        item, depth, path = stack.pop()
        if isinstance(item, str):
            problem = text_problem(item)
            if problem:
                raise InvalidInput(_at(where, path), problem, text=True)
        elif isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise InvalidInput(where, f"is nested deeper than {MAX_JSON_DEPTH} levels")
            if isinstance(item, dict):
                for key, child in item.items():
                    child_path = f"{path}.{key}" if path else str(key)
                    if isinstance(key, str):
                        problem = text_problem(key)
                        if problem:
                            where_key = _at(where, path)
                            raise InvalidInput(where_key, f"has a key that {problem}", text=True)
                    stack.append((child, depth + 1, child_path))
            else:
                for index, child in enumerate(item):
                    stack.append((child, depth + 1, f"{path}[{index}]"))
        elif isinstance(item, float) and not math.isfinite(item):
            raise InvalidInput(_at(where, path), "is not a finite number")


def _at(where: str, path: str) -> str:
    if len(path) > 80:
        path = path[:77] + "..."
    return f"{where} at {path}" if path else where


def check_urlencoded(raw: bytes, kind: str, *, max_fields: int | None = None) -> None:
    """A query string or form body: every name and value percent-decodes to text.

    `kind` is what to call one entry ("query parameter", "form field").
    """
    text = decode_utf8(raw, f"the {kind}s")
    parts = [part for part in text.split("&") if part]
    if max_fields is not None and len(parts) > max_fields:
        raise InvalidInput(f"the {kind}s", f"number more than {max_fields}: send fewer")
    for part in parts:
        raw_name, _, raw_value = part.partition("=")
        name = decode_utf8(unquote_to_bytes(raw_name.replace("+", " ")), f"a {kind} name")
        where = f"{kind} {name[:80]!r}"
        decode_utf8(unquote_to_bytes(raw_value.replace("+", " ")), where)
