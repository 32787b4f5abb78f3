"""Card-number detection and masking, shared by logs, audit details and rendered payloads.

A candidate is 13 to 19 digits, optionally separated by single spaces or dashes, not touching
other digits, that passes the Luhn check. Masking keeps at most the first 6 and last 4 digits,
the most PCI DSS allows to be displayed.
"""

from __future__ import annotations

import re
from typing import Any

_CANDIDATE = re.compile(r"(?<![0-9])(?:[0-9][ -]?){12,18}[0-9](?![0-9])")
# What every candidate contains: 13 digits with at most one separator between neighbours. One
# search for it (no lookarounds, no variable repetition) rules out almost all text cheaply.
_THIRTEEN_DIGITS = re.compile(r"[0-9](?:[ -]?[0-9]){12}")


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def mask_pan(digits: str) -> str:
    return f"{digits[:6]}{'*' * (len(digits) - 10)}{digits[-4:]}"


def _replace(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = text.replace(" ", "").replace("-", "")
    if 13 <= len(digits) <= 19 and luhn_valid(digits):
        return mask_pan(digits)
    return text


def redact_text(text: str) -> str:
    if _THIRTEEN_DIGITS.search(text) is None:
        return text
    return _CANDIDATE.sub(_replace, text)


def find_pans(text: str) -> list[str]:
    """Every full card number in ``text`` (used by the test suite's log scanner)."""
    found = []
    for match in _CANDIDATE.finditer(text):
        digits = match.group(0).replace(" ", "").replace("-", "")
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            found.append(mask_pan(digits))
    return found


def redact_value(value: Any) -> Any:
    """Redact card numbers in every string inside a JSON-like value."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {redact_text(str(k)): redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and 10**12 <= abs(value) < 10**19:
        text = str(value)
        return redact_text(text) if redact_text(text) != text else value
    return value
