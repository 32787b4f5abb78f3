"""Query and form values from people and browsers, parsed once, the same way everywhere.

Anything an operator (or anyone) can type reaches the database only in a shape the database
accepts: no NUL characters (PostgreSQL text cannot hold them), integers that fit a signed 64-bit
column, dates a ``timedelta`` can still step past, amounts within what FINCI may send. A value
outside that is a 400 naming the parameter, never a 500 or a "database unavailable" 503 that
would page on-call for someone's typo.

``str.isdigit()`` and ``int()`` are not used on raw input: both accept Unicode digits (``²``,
``٣``), ``int()`` also signs, spaces and underscores, and raises past 4300 digits.
"""

from __future__ import annotations

import datetime as dt
import re
from enum import Enum
from typing import Final, TypeVar

from flask import Flask, current_app, request
from werkzeug.exceptions import BadRequest
from werkzeug.routing import IntegerConverter

from console.finci.contract import AMOUNT_MAX_MINOR_UNITS

E = TypeVar("E", bound=Enum)
D = TypeVar("D")

BIGINT_MAX: Final = 2**63 - 1
# Dates anyone could mean for this console; far enough from datetime's limits (year 1 and 9999)
# that a range end of "that day + 1" never overflows.
DATE_MIN: Final = dt.date(2000, 1, 1)
DATE_MAX: Final = dt.date(2100, 12, 31)

_ASCII_INTEGER = re.compile(r"[0-9]{1,19}")
_ASCII_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_ASCII_INSTANT = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})(?:T([0-9]{2}):([0-9]{2})(?::([0-9]{2}))?)?")
# Major units with at most two decimals (a dot or a comma): "12", "12.5", "12,50", ".5".
_ASCII_AMOUNT = re.compile(r"(?=[.,]?[0-9])([0-9]{0,18})(?:[.,]([0-9]{1,2}))?")
_FORM_MIMETYPES: Final = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


class ParameterInvalid(BadRequest, ValueError):
    """A 400 that names the parameter; also a ValueError, for callers that collect problems."""

    def __init__(self, name: str, reason: str):
        self.parameter = name
        self.reason = reason
        super().__init__(description=f"{name} {reason}")


def _present(raw: str | None) -> str | None:
    value = (raw or "").strip()
    return value or None


def integer(name: str, raw: str | None, *, minimum: int = 0, maximum: int = BIGINT_MAX
            ) -> int | None:
    """A whole number in ``minimum..maximum`` (ASCII digits only), or None when empty."""
    value = _present(raw)
    if value is None:
        return None
    if not _ASCII_INTEGER.fullmatch(value) or not minimum <= int(value) <= maximum:
        raise ParameterInvalid(name, f"must be a whole number from {minimum} to {maximum}")
    return int(value)


def choice(name: str, raw: str | None, enum: type[E], default: D) -> E | D:
    """A member of ``enum`` by its value, or ``default`` when empty."""
    value = _present(raw)
    if value is None:
        return default
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(str(member.value) for member in enum)
        raise ParameterInvalid(name, f"must be one of: {allowed}") from None


def _bounded(name: str, year: str, month: str, day: str) -> dt.date:
    try:
        value = dt.date(int(year), int(month), int(day))
    except ValueError:
        value = None
    if value is None or not DATE_MIN <= value <= DATE_MAX:
        raise ParameterInvalid(
            name, f"must be a date like 2026-11-27, from {DATE_MIN} to {DATE_MAX}")
    return value


def date(name: str, raw: str | None) -> dt.date | None:
    """A calendar date ``YYYY-MM-DD`` within ``DATE_MIN..DATE_MAX``, or None when empty."""
    value = _present(raw)
    if value is None:
        return None
    if not _ASCII_DATE.fullmatch(value):
        raise ParameterInvalid(name, "must be a date like 2026-11-27")
    return _bounded(name, *value.split("-"))


def day_start(name: str, raw: str | None) -> dt.datetime | None:
    """The date as UTC midnight, or None when empty."""
    value = date(name, raw)
    return None if value is None else dt.datetime.combine(value, dt.time(), tzinfo=dt.UTC)


def instant(name: str, raw: str | None, *, end: bool = False) -> dt.datetime | None:
    """``YYYY-MM-DD`` or ``YYYY-MM-DDTHH:MM[:SS]``, UTC, or None when empty. A bare date as the
    end of a range (``end``) means "through that day"."""
    value = _present(raw)
    if value is None:
        return None
    match = _ASCII_INSTANT.fullmatch(value)
    if match is None:
        raise ParameterInvalid(name, "must be a date (2026-11-27) or time (2026-11-27T08:00), UTC")
    day = _bounded(name, *match[1].split("-"))
    if match[2] is None:
        start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
        return start + dt.timedelta(days=1) if end else start
    try:
        clock = dt.time(int(match[2]), int(match[3]), int(match[4] or 0))
    except ValueError:
        raise ParameterInvalid(name, "has no such time of day") from None
    return dt.datetime.combine(day, clock, tzinfo=dt.UTC)


def amount(name: str, raw: str | None) -> int | None:
    """An amount in major units (``12.50`` or ``12,50``) as minor units, at most
    ``AMOUNT_MAX_MINOR_UNITS`` (what ingress accepts from FINCI), or None when empty."""
    value = _present(raw)
    if value is None:
        return None
    match = _ASCII_AMOUNT.fullmatch(value)
    if match is None:
        raise ParameterInvalid(name, "must be a number like 12.50 (positive, at most two "
                                     "decimals)")
    minor = int(match[1] or "0") * 100 + int((match[2] or "0").ljust(2, "0"))
    if minor > AMOUNT_MAX_MINOR_UNITS:
        raise ParameterInvalid(name, "is larger than any amount FINCI can send")
    return minor


class BoundedIntegerConverter(IntegerConverter):
    """``<int:...>`` that only matches ASCII digits and ids a BIGINT column can hold: a larger id
    cannot exist, so it is a 404, not a database error."""

    regex = r"[0-9]{1,19}"

    def __init__(self, map, fixed_digits: int = 0, min: int | None = None,
                 max: int | None = BIGINT_MAX, signed: bool = False) -> None:
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


def _has_nul(values) -> bool:
    return any("\x00" in key or "\x00" in value for key, value in values.items(multi=True))


def refuse_nul_characters() -> None:
    """NUL in the path, a query or a form value is never meaningful, and PostgreSQL refuses it
    at the first query (a 503 and an ERROR log line): refuse it first, as a 400."""
    # Machine blueprints (ingress) verify the raw body before anything parses it: not here.
    machine = request.blueprint in current_app.config.get("JSON_ERROR_BLUEPRINTS", set())
    if "\x00" in request.path or _has_nul(request.args) or (
            not machine and request.mimetype in _FORM_MIMETYPES and _has_nul(request.form)):
        raise BadRequest(description="NUL characters are not allowed in requests")


def init_app(app: Flask) -> None:
    app.url_map.converters["int"] = BoundedIntegerConverter
    # create_app registers this before the CSRF and permission hooks: a denial writes an audit
    # row carrying the path, and that row must not be what meets the NUL first.
    app.before_request(refuse_nul_characters)
