"""What an audit event changed, for people: its ``changes`` (``record(before=, after=)``) as
one row per field with the value before and after, and for structured values (a rule set, a
role list) a line diff of their pretty-printed JSON, so a reviewer sees the two lines that moved
rather than two 200-line documents.

Pure presentation over the stored ``details`` text: nothing here reads the database, and a
``details`` that is not the JSON the console writes is shown as it is, never an error.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import Any

CONTEXT_LINES = 3
MAX_DIFF_LINES = 400  # beyond this a diff is cut, and says so


@dataclass(frozen=True)
class DiffLine:
    kind: str  # "same", "removed", "added" or "gap" (lines left out between hunks)
    text: str


@dataclass(frozen=True)
class Change:
    field: str
    before: str  # the value as JSON text ("—" when absent)
    after: str
    lines: tuple[DiffLine, ...] = ()  # for structured values only
    cut: bool = False

    @property
    def structured(self) -> bool:
        return bool(self.lines)


@dataclass(frozen=True)
class Presented:
    changes: tuple[Change, ...]
    other: str  # the rest of the details, as stored ("" when nothing else)


def _text(value: Any) -> str:
    if value is None:
        return "—"
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True,
                                                           ensure_ascii=False)


def _pretty(value: Any) -> list[str]:
    if value is None:
        return []
    return json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False).splitlines()


def _line_diff(before: Any, after: Any) -> tuple[tuple[DiffLine, ...], bool]:
    lines: list[DiffLine] = []
    for line in difflib.unified_diff(_pretty(before), _pretty(after), lineterm="",
                                     n=CONTEXT_LINES):
        if line.startswith(("---", "+++")):
            continue
        if line.startswith("@@"):
            if lines:
                lines.append(DiffLine("gap", "…"))
            continue
        kind = {"-": "removed", "+": "added"}.get(line[:1], "same")
        lines.append(DiffLine(kind, line[1:]))
    if len(lines) > MAX_DIFF_LINES:
        return tuple(lines[:MAX_DIFF_LINES]), True
    return tuple(lines), False


def change_of(field: str, change: Any) -> Change:
    if not isinstance(change, dict):
        return Change(field, "—", _text(change))
    before, after = change.get("before"), change.get("after")
    if isinstance(before, dict | list) or isinstance(after, dict | list):
        lines, cut = _line_diff(before, after)
        return Change(field, _text(before), _text(after), lines, cut)
    return Change(field, _text(before), _text(after))


def present(details: str | None) -> Presented:
    """The event's changes, and the rest of its details as the stored JSON text."""
    try:
        document = json.loads(details or "{}")
    except ValueError:
        return Presented((), details or "")
    if not isinstance(document, dict) or not isinstance(document.get("changes"), dict):
        return Presented((), "" if document == {} else (details or ""))
    changes = tuple(change_of(str(k), v) for k, v in sorted(document["changes"].items()))
    rest = {k: v for k, v in document.items() if k != "changes"}
    return Presented(changes, json.dumps(rest, sort_keys=True, ensure_ascii=False,
                                         separators=(",", ":")) if rest else "")
