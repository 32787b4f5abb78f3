"""Showing money: integer minor units with their ISO 4217 currency, as people read them.

Amounts are stored and computed in minor units only; this module is for display (pages, rule
trace details). Exponents per ISO 4217; any other currency has two decimals.
"""

from __future__ import annotations

from typing import Final

_EXPONENTS: Final = {
    **dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF",
                     "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    **dict.fromkeys(("CLF", "UYW"), 4),
}


def exponent(currency: str) -> int:
    return _EXPONENTS.get(currency, 2)


def format_minor(amount: int | None, currency: str | None) -> str:
    """``123456, "EUR"`` → ``1,234.56 EUR``; exact (integer arithmetic, no floats)."""
    if amount is None:
        return "—"
    currency = currency or ""
    places = exponent(currency)
    sign = "-" if amount < 0 else ""
    whole, fraction = divmod(abs(amount), 10**places)
    text = f"{sign}{whole:,}" + (f".{fraction:0{places}d}" if places else "")
    return f"{text} {currency}".strip()
