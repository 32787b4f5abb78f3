"""Card-number detection and masking, shared by logs, audit details and rendered payloads.

A candidate is 13 to 19 digits, optionally separated by single spaces or dashes, not touching
other digits, that passes the Luhn check and is not a run inside a hexadecimal digest. Masking
keeps at most the first 6 and last 4 digits, the most PCI DSS allows to be displayed.
"""

from __future__ import annotations

import re
from typing import Any

_CANDIDATE = re.compile(r"(?<![0-9])(?:[0-9][ -]?){12,18}[0-9](?![0-9])")
# What every candidate contains: 13 digits with at most one separator between neighbours. One
# search for it (no lookarounds, no variable repetition) rules out almost all text cheaply.
_THIRTEEN_DIGITS = re.compile(r"[0-9](?:[ -]?[0-9]){12}")
_HEX = frozenset("0123456789abcdefABCDEF")
_DIGEST_LENGTH = 32  # MD5 and up: SHA-1 is 40 hex characters, SHA-256 64


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


def _in_digest(match: re.Match[str]) -> bool:
    """The digits are a run inside a hexadecimal token of digest length (a SHA-256, a key id,
    a UUID without dashes), not a number of their own: random hex holds Luhn-valid runs of 13+
    digits often enough to corrupt logged hashes and to fail the suite's scanner at random."""
    text, left, right = match.string, match.start(), match.end()
    while left > 0 and text[left - 1] in _HEX:
        left -= 1
    while right < len(text) and text[right] in _HEX:
        right += 1
    return right - left >= _DIGEST_LENGTH


def _pan_of(match: re.Match[str]) -> str | None:
    """The card number a candidate holds, or None."""
    text = match.group(0)
    digits = text.replace(" ", "").replace("-", "")
    if not (13 <= len(digits) <= 19 and luhn_valid(digits)):
        return None
    if digits == text and _in_digest(match):
        return None
    return digits


def _replace(match: re.Match[str]) -> str:
    digits = _pan_of(match)
    return match.group(0) if digits is None else mask_pan(digits)


def redact_text(text: str) -> str:
    if _THIRTEEN_DIGITS.search(text) is None:
        return text
    return _CANDIDATE.sub(_replace, text)


def find_pans(text: str) -> list[str]:
    """Every full card number in ``text`` (used by the test suite's log scanner)."""
    return [mask_pan(digits) for digits in map(_pan_of, _CANDIDATE.finditer(text))
            if digits is not None]


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
