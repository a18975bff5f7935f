"""The one CSV writer: every CSV export goes through it, so no cell runs as a formula.

A spreadsheet runs a cell that starts with `=`, `+`, `-` or `@` (and some run one starting
with a tab or a carriage return) as a formula: `=HYPERLINK(...)` in a refused agent's reason
would become a link in an auditor's spreadsheet. Such a cell is written with a `'` in front
(the spreadsheets' own "this is text" mark). A cell that already starts with `'` gets one
too, so the mark can always be undone exactly: `restore` strips one leading `'`, and gives
back the value as it was (the offline verification in docs/audit.md does just that before
it re-hashes a row).

Python code writes rows through `CsvWriter`; a COPY that PostgreSQL formats wraps each text
column in `neutralise_sql`, the same rule in SQL.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
MARK = "'"
_MARKED_STARTS = (*FORMULA_STARTS, MARK)


def neutralise(value: str) -> str:
    """The cell text for a value: marked with a leading `'` when a spreadsheet could run it."""
    return MARK + value if value.startswith(_MARKED_STARTS) else value


def restore(cell: str) -> str:
    """The value a cell holds: undoes `neutralise` exactly."""
    return cell[1:] if cell.startswith(MARK) else cell


def _sql_literal(text: str) -> str:
    return (
        "E'"
        + text.replace("\\", "\\\\").replace("'", "\\'").replace("\t", "\\t").replace("\r", "\\r")
        + "'"
    )


_SQL_STARTS = ", ".join(_sql_literal(start) for start in _MARKED_STARTS)


def neutralise_sql(expression: str) -> str:
    """The same rule as `neutralise`, for a text expression in PostgreSQL (NULL stays NULL)."""
    return (
        f"CASE WHEN left({expression}, 1) IN ({_SQL_STARTS}) "
        f"THEN {_sql_literal(MARK)} || {expression} ELSE {expression} END"
    )


class Writable(Protocol):
    def write(self, text: str, /) -> Any: ...


_NEEDS_QUOTES = (",", '"', "\r", "\n")


def _field(value: Any) -> str:
    text = "" if value is None else neutralise(value) if isinstance(value, str) else str(value)
    if any(char in text for char in _NEEDS_QUOTES):
        return '"' + text.replace('"', '""') + '"'
    return text


class CsvWriter:
    """RFC 4180 rows with `\n` line ends; text cells neutralised, None an empty cell.

    Written here rather than with csv.writer, which leaves a lone carriage return unquoted
    when lines end in `\n` (a reader then splits the row there)."""

    def __init__(self, stream: Writable) -> None:
        self._stream = stream

    def writerow(self, cells: Iterable[Any]) -> None:
        self._stream.write(",".join(_field(cell) for cell in cells) + "\n")

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)
