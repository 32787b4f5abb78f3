"""Random ids for test data, made of letters only after their prefix.

Hex and decimal ids hold Luhn-valid runs of 13+ digits often enough to be a problem: 16 random
hex characters do about once in a few thousand ids, and the suite makes thousands. Wherever such
an id is shown (a decisions list, a timeline, a JSON answer), the suite's card-number scanner
rightly reports it as a leaked card number, and CI fails at random.
"""

from __future__ import annotations

import uuid

_DIGITS_TO_LETTERS = str.maketrans("0123456789", "ghijklmnop")


def letters(length: int = 12) -> str:
    """``length`` random lowercase letters (at most 32)."""
    return uuid.uuid4().hex[:length].translate(_DIGITS_TO_LETTERS)


def new_id(prefix: str, length: int = 12) -> str:
    return f"{prefix}_{letters(length)}"
