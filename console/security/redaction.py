"""Card-number detection and masking, shared by logs, audit details and rendered payloads.

A candidate is 13 to 19 digits, not touching other digits, that passes the Luhn check and is not
a run inside a hexadecimal digest. Its digits may be grouped by the separators people and
systems write between them: a space, two spaces, a tab, a no-break space, a dash (with or
without spaces around it), a dot, an underscore or a slash. A single dot is a decimal point, not
a grouping (``4111111111111111.0`` is a JSON float), so a candidate with one dot, or whose digits
taken together are no card number, is checked run by run: the digits between its separators. Masking
keeps at most the first 6 and last 4 digits, the most PCI DSS allows to be displayed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

# ``keep(digits)``: a plain run of digits that is an identifier, not a card number, although it
# passes the Luhn check (FINCI's 18-digit ids: console.finci.contract.is_finci_id).
Keep = Callable[[str], bool] | None

# At most one separator between neighbouring digits.
_GAP = r"(?:[ \t\u00a0]{1,2}|[ \t\u00a0]?[-./_][ \t\u00a0]?)"
_CANDIDATE = re.compile(rf"(?<![0-9])(?:[0-9]{_GAP}?){{12,18}}[0-9](?![0-9])")
# What every candidate contains: 13 digits with at most one separator between neighbours. One
# search for it (no lookarounds, no variable repetition) rules out almost all text cheaply.
_THIRTEEN_DIGITS = re.compile(rf"[0-9](?:{_GAP}?[0-9]){{12}}")
_RUN = re.compile(r"[0-9]+")
# Where a JSON number may be written as a float (4111111111111111.0, 4.111111111111111e15).
_NON_INTEGER_NUMBER = re.compile(r"[0-9][.eE]")
_HEX = frozenset("0123456789abcdefABCDEF")
# MD5, SHA-1, SHA-224, SHA-256, SHA-384, SHA-512 in hex (a UUID without dashes is 32 too).
_DIGEST_LENGTHS = frozenset({32, 40, 56, 64, 96, 128})


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


def is_card_number(digits: str) -> bool:
    """``digits`` (digits only) has the length and check digit of a card number."""
    return 13 <= len(digits) <= 19 and luhn_valid(digits)


def mask_pan(digits: str) -> str:
    return f"{digits[:6]}{'*' * (len(digits) - 10)}{digits[-4:]}"


def _word_character(text: str, index: int) -> bool:
    return 0 <= index < len(text) and (text[index].isalnum() or text[index] == "_")


def _in_digest(text: str, start: int, end: int) -> bool:
    """The digits ``text[start:end]`` are a run inside a hexadecimal digest (a SHA-256, a key
    id, a UUID without dashes), not a number of their own: random hex holds Luhn-valid runs of
    13+ digits often enough to corrupt logged hashes and to fail the suite's scanner at random.
    A digest is a whole word of one letter case and of a digest's length; a card number glued
    to other hex characters (``deadbeef4111…``, ``AB4111…cd``) is not one."""
    left, right = start, end
    while left > 0 and text[left - 1] in _HEX:
        left -= 1
    while right < len(text) and text[right] in _HEX:
        right += 1
    token = text[left:right]
    return (right - left in _DIGEST_LENGTHS and (token.islower() or token.isupper())
            and not _word_character(text, left - 1) and not _word_character(text, right))


# The stars of a number masked already (411111******1111, 4111-11**-****-1111), next to a
# candidate or one separator away.
_MASK_BEFORE = re.compile(r"\*\*[-. ]?\Z")
_MASK_AFTER = re.compile(r"[-. ]?\*\*")


def _beside_a_mask(match: re.Match[str]) -> bool:
    """The candidate's first or last digits are the kept end of a masked number: joined with
    the digits next to them they would read as a new card number ("2026-11-27 411111******"),
    and masking would never be done. Such a candidate is checked run by run instead."""
    text = match.string
    return (_MASK_BEFORE.search(text, max(0, match.start() - 3), match.start()) is not None
            or _MASK_AFTER.match(text, match.end()) is not None)


def _pans_of(match: re.Match[str]) -> list[tuple[int, int, str]]:
    """The card numbers a candidate holds, as (start, end, digits) within ``match.string``."""
    text, start = match.group(0), match.start()
    runs = list(_RUN.finditer(text))
    if len(runs) == 1:
        if is_card_number(text) and not _in_digest(match.string, start, match.end()):
            return [(start, match.end(), text)]
        return []
    digits = "".join(run.group(0) for run in runs)
    if text.count(".") != 1 and not _beside_a_mask(match) and is_card_number(digits):
        return [(start, match.end(), digits)]
    # Each run between separators is bounded by non-digits, like a candidate of its own.
    return [(start + run.start(), start + run.end(), run.group(0)) for run in runs
            if is_card_number(run.group(0))
            and not _in_digest(match.string, start + run.start(), start + run.end())]


def _card_numbers(match: re.Match[str], keep: Keep) -> list[tuple[int, int, str]]:
    pans = _pans_of(match)
    if keep is None:
        return pans
    return [(start, end, digits) for start, end, digits in pans
            if not (match.string[start:end] == digits and keep(digits))]


def _replace(match: re.Match[str], keep: Keep = None) -> str:
    pans = _card_numbers(match, keep)
    if not pans:
        return match.group(0)
    text, pieces, position = match.string, [], match.start()
    for start, end, digits in pans:
        pieces += [text[position:start], mask_pan(digits)]
        position = end
    pieces.append(text[position:match.end()])
    return "".join(pieces)


def redact_text(text: str, keep: Keep = None) -> str:
    """``text`` with every card number masked; plain digit runs that ``keep`` accepts stay."""
    if _THIRTEEN_DIGITS.search(text) is None:
        return text
    return _CANDIDATE.sub(lambda match: _replace(match, keep), text)


def find_pans(text: str, keep: Keep = None) -> list[str]:
    """Every full card number in ``text`` (used by the test suite's log scanner)."""
    return [mask_pan(digits) for match in _CANDIDATE.finditer(text)
            for _start, _end, digits in _card_numbers(match, keep)]


def redact_identifier(value: str | None, keep: Keep = None) -> str | None:
    """An identifier as it is stored and shown (webhook ids, FINCI ids, business keys, token ids,
    message types, the key a refused body repeated): any card number in it masked at write time,
    since every viewer sees these columns. Anything else stays as typed, so FINCI's numeric ids
    (``251001435963146785`` fails the Luhn check) remain readable and searchable; so do the ids
    ``keep`` names (the one in ten that passes it)."""
    return None if value is None else redact_text(value, keep)


def _number_digits(value: int | float) -> str | None:
    """The digits of a JSON number that could be a card number: an integer, or a float whose
    value is one (``4111111111111111.0``, ``4.111111111111111e15``)."""
    if isinstance(value, float):
        if not value.is_integer():
            return None
        value = int(value)
    return str(abs(value)) if 10**12 <= abs(value) < 10**19 else None


def redact_value(value: Any, keep: Keep = None) -> Any:
    """Redact card numbers in every string inside a JSON-like value, and in its keys; a number
    that is a card number becomes its masked form, a string. Strings that ``keep`` accepts as a
    whole stay (a JSON number is never an id)."""
    if isinstance(value, str):
        return redact_text(value, keep)
    if isinstance(value, dict):
        return {redact_text(str(k)): redact_value(v, keep) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v, keep) for v in value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        digits = _number_digits(value)
        if digits is not None and is_card_number(digits):
            return mask_pan(digits)
        if isinstance(value, float):
            # A card number among a float's digits (0.4111111111111111) is masked like text.
            text = repr(value)
            return value if redact_text(text) == text else redact_text(text)
    return value


def value_has_pan(value: Any, keep: Keep = None) -> bool:
    """A card number anywhere in a JSON-like value: its strings, keys or numbers."""
    if isinstance(value, str):
        return redact_text(value, keep) != value
    if isinstance(value, dict):
        return any(value_has_pan(str(k)) or value_has_pan(v, keep) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(value_has_pan(v, keep) for v in value)
    return redact_value(value) is not value


def redact_json(text: str, document: Any, keep: Keep = None) -> str:
    """JSON ``text`` (which decodes to ``document``) with every card number masked, still valid
    JSON. The text itself is masked first, so the stored body keeps its original form; if what
    it decodes to still holds a card number (written with escapes, ``"\\u0034111…"``, or as a
    float, ``4.111111111111111e15``), the redacted document is stored re-serialized instead.
    Plain digit runs that ``keep`` accepts (the message's own FINCI ids) stay as written."""
    masked = redact_text(text, keep)
    if masked == text and "\\" not in text and _NON_INTEGER_NUMBER.search(text) is None:
        # Without escapes every string decodes to the text written, and every integer is its
        # digits: masking the text has seen all there is (the ingress hot path stops here).
        return text
    try:
        decoded = document if masked == text else json.loads(masked)
    except ValueError:
        # A card number as a bare JSON number masks to invalid JSON.
        decoded = document
    else:
        if not value_has_pan(decoded, keep):
            return masked
    return json.dumps(redact_value(decoded, keep), ensure_ascii=False)
