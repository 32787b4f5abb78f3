"""Webhook body parsing and validation (assumption B.3, ``webhook.schema.json``).

Runs only after the signature has been verified, on the same raw bytes. It is strict where
leniency could let two readers disagree about one message (duplicate keys, ``true`` as a number,
``1.0`` as an integer, NaN), because the stored message, the business decision and the
reconciliation must all see the same values.

Unknown message types are accepted with ``known_type=False`` so ingress can store and park them
for review: the schema's ``type`` enum would reject them, and a rejected delivery is one FINCI
may give up on. For those, only ``type``, ``id`` and ``created_at`` are checked and every other
field stays in ``raw`` untyped, since we cannot know what it means.

There is deliberately no catch-all ``except Exception``: an unexpected error is a bug, and a 500
makes FINCI retry after the fix, whereas a 400 could make it give up on a good message. The fuzz
tests are what show that every bad input becomes :class:`PayloadRejected`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from importlib import resources
from typing import Any, Final

import fastjsonschema
from jsonschema import Draft202012Validator, FormatChecker, ValidationError, validators

from console.finci import contract


class PayloadReason(StrEnum):
    """Why a body was refused. Fixed codes: safe for logs, metrics and records."""

    NOT_BYTES = "not_bytes"
    TOO_LARGE = "too_large"
    NOT_UTF8 = "not_utf8"
    NOT_JSON = "not_json"
    DUPLICATE_KEY = "duplicate_key"
    NON_FINITE_NUMBER = "non_finite_number"
    NUMBER_TOO_LONG = "number_too_long"
    TOO_DEEP = "too_deep"
    FORBIDDEN_CHARACTER = "forbidden_character"
    NOT_OBJECT = "not_object"
    SCHEMA_VIOLATION = "schema_violation"


class PayloadRejected(Exception):
    """The body is not a message we can store. ``detail`` names a field, never a value."""

    def __init__(self, reason: PayloadReason, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(
            f"webhook body rejected: {reason.value}" + (f" ({detail})" if detail else "")
        )


# --- strict RFC 3339 date-time ---------------------------------------------------------------

_DATE_TIME_RE: Final = re.compile(
    r"(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})"
    r"[Tt](?P<hour>[0-9]{2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})"
    r"(?:\.(?P<fraction>[0-9]{1,9}))?"
    r"(?P<zone>[Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def parse_timestamp(value: str) -> datetime:
    """Parse an RFC 3339 date-time that names its offset; return it as aware UTC.

    Stricter than ``datetime.fromisoformat``: the offset is mandatory (a naive time would be
    read in whatever zone the server runs in), only ASCII digits are accepted, and leap second
    ``:60`` is refused because ``datetime`` cannot hold it. Fractions beyond microseconds are
    truncated. Raises ``ValueError``.
    """
    if not isinstance(value, str):
        raise ValueError("date-time must be a string")
    match = _DATE_TIME_RE.fullmatch(value)
    if match is None:
        raise ValueError("date-time must be RFC 3339 with an explicit offset")
    fraction = (match["fraction"] or "").ljust(6, "0")[:6]
    zone = match["zone"]
    if zone in ("Z", "z"):
        tz = UTC
    else:
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        if hours > 23 or minutes > 59:
            raise ValueError("date-time offset out of range")
        sign = -1 if zone[0] == "-" else 1
        tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        local = datetime(
            int(match["year"]),
            int(match["month"]),
            int(match["day"]),
            int(match["hour"]),
            int(match["minute"]),
            int(match["second"]),
            int(fraction),
            tzinfo=tz,
        )
        # Converting year 0001 or 9999 across an offset can leave datetime's range.
        return local.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise ValueError("date-time out of range") from exc


# --- schema, compiled once ----------------------------------------------------------------------


def _load_schema() -> dict[str, Any]:
    text = resources.files("console.finci").joinpath("webhook.schema.json").read_text("utf-8")
    return json.loads(text)


def _strict_integer(_checker: object, instance: object) -> bool:
    # JSON Schema counts 1.0 as an integer and Python counts True as one; an amount must be
    # neither, or a float rounding or a mistyped flag could move money.
    return isinstance(instance, int) and not isinstance(instance, bool)


def _is_date_time(instance: object) -> bool:
    if not isinstance(instance, str):
        return True  # the "type" keyword reports non-strings
    try:
        parse_timestamp(instance)
    except ValueError:
        return False
    return True


SCHEMA: Final[dict[str, Any]] = _load_schema()
Draft202012Validator.check_schema(SCHEMA)

_FORMATS: Final = FormatChecker(formats=())
_FORMATS.checks("date-time")(_is_date_time)


def _ecma_pattern(validator: Any, pattern: str, instance: object, _schema: object) -> Any:
    # JSON Schema patterns are ECMA-262, where a final "$" matches only at the very end; in
    # Python it also matches before a trailing newline, so "EUR\n" would pass "^[A-Z]{3}$".
    if not validator.is_type(instance, "string"):
        return
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    if re.search(pattern, instance) is None:
        yield ValidationError("does not match the pattern")


_StrictValidator: Final = validators.extend(
    Draft202012Validator,
    validators={"pattern": _ecma_pattern},
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _strict_integer),
)
_KNOWN_VALIDATOR: Final = _StrictValidator(SCHEMA, format_checker=_FORMATS)

# For unknown types: the message must still be identifiable (id) and datable (created_at), using
# the very same definitions as the full schema so the two can never drift apart.
_UNKNOWN_SCHEMA: Final[dict[str, Any]] = {
    "$schema": SCHEMA["$schema"],
    "type": "object",
    "required": ["type", "id", "created_at"],
    "properties": {
        "type": {"type": "string", "pattern": f"^{contract.UNKNOWN_TYPE_PATTERN}$"},
        "id": SCHEMA["properties"]["id"],
        "created_at": SCHEMA["properties"]["created_at"],
    },
}
_UNKNOWN_VALIDATOR: Final = _StrictValidator(_UNKNOWN_SCHEMA, format_checker=_FORMATS)

_KNOWN_TYPES: Final = frozenset(t.value for t in contract.MessageType)
# Only JSON integer literals this long or shorter are parsed; longer ones cannot be amounts and
# would otherwise reach int()'s quadratic path and its 4300-digit ValueError.
_MAX_INT_DIGITS: Final = 40
_SAFE_NAME_RE: Final = re.compile(r"[A-Za-z0-9_]{1,64}")


def _safe_name(key: object) -> str:
    """A key as it may appear in ``detail``: our own field names pass, anything else is hidden."""
    if isinstance(key, str) and _SAFE_NAME_RE.fullmatch(key):
        return key
    return "<field>"


# --- JSON decoding --------------------------------------------------------------------------


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Python keeps the last duplicate, other parsers the first: a signed body with both could
    # mean one thing to us and another to whoever reads the stored copy.
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise PayloadRejected(PayloadReason.DUPLICATE_KEY, _safe_name(key))
        obj[key] = value
    return obj


def _reject_constant(_name: str) -> Any:
    raise PayloadRejected(PayloadReason.NON_FINITE_NUMBER)


def _parse_float(text: str) -> float:
    if len(text) > _MAX_INT_DIGITS * 2:
        raise PayloadRejected(PayloadReason.NUMBER_TOO_LONG)
    value = float(text)
    # 1e999 parses to inf, which json.dumps would later write back as the invalid "Infinity".
    if value in (float("inf"), float("-inf")):
        raise PayloadRejected(PayloadReason.NON_FINITE_NUMBER)
    return value


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        raise PayloadRejected(PayloadReason.NUMBER_TOO_LONG)
    return int(text)


def _walk(value: object) -> Iterator[tuple[object, int]]:
    """Every node with its depth, iteratively, so hostile nesting cannot exhaust the stack."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        yield node, depth
        if isinstance(node, dict):
            stack.extend((child, depth + 1) for child in node.values())
            stack.extend((key, depth + 1) for key in node)
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node)


def _check_structure(document: object) -> None:
    for node, depth in _walk(document):
        if depth > contract.WEBHOOK_MAX_JSON_DEPTH + 1:
            raise PayloadRejected(PayloadReason.TOO_DEEP)
        # NUL cannot be stored in PostgreSQL text or jsonb, and a lone surrogate (legal as a
        # JSON escape) cannot be encoded as UTF-8: either would fail later, at storage time.
        if isinstance(node, str) and ("\x00" in node or not _encodes_as_utf8(node)):
            raise PayloadRejected(PayloadReason.FORBIDDEN_CHARACTER)


def _encodes_as_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _may_break_structure(text: str) -> bool:
    """False when ``_check_structure`` cannot fail, decided from the text in C-level scans.

    Without a backslash there are no JSON escapes, so no string can hold NUL (a raw control
    character is already invalid JSON) or a lone surrogate (valid UTF-8 cannot encode one); and
    a document cannot nest deeper than it has opening brackets."""
    return "\\" in text or text.count("{") + text.count("[") > contract.WEBHOOK_MAX_JSON_DEPTH


def _decode(body: bytes) -> dict[str, Any]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadRejected(PayloadReason.NOT_UTF8) from None
    try:
        document = json.loads(
            text,
            object_pairs_hook=_reject_duplicates,
            parse_constant=_reject_constant,
            parse_float=_parse_float,
            parse_int=_parse_int,
        )
    except RecursionError:
        raise PayloadRejected(PayloadReason.TOO_DEEP) from None
    except ValueError:  # JSONDecodeError is a ValueError
        raise PayloadRejected(PayloadReason.NOT_JSON) from None
    if _may_break_structure(text):
        _check_structure(document)
    if not isinstance(document, dict):
        raise PayloadRejected(PayloadReason.NOT_OBJECT)
    return document


# --- validation -----------------------------------------------------------------------------


def _describe(error: ValidationError) -> str:
    """``<field path>: <keyword>``, built from our schema only, never from the instance."""
    path = ".".join(_safe_name(part) for part in error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [p for p in error.validator_value if p not in error.instance]
        prefix = f"{path}." if path else ""
        return f"{prefix}{_safe_name(missing[0]) if missing else '<field>'}: required"
    if error.validator == "not" and isinstance(error.validator_value, dict):
        forbidden = error.validator_value.get("required") or []
        prefix = f"{path}." if path else ""
        names = ",".join(_safe_name(name) for name in forbidden) or "<field>"
        return f"{prefix}{names}: not allowed here"
    return f"{path or '<body>'}: {error.validator}"


def _ecma_anchored(schema: Any) -> Any:
    """A copy of ``schema`` whose patterns end in ``\\Z`` (see ``_ecma_pattern``) and whose
    ``$schema`` is draft-07, the newest draft fastjsonschema compiles. Every keyword the schema
    uses means the same in draft-07 and 2020-12."""
    if isinstance(schema, dict):
        copy = {key: _ecma_anchored(value) for key, value in schema.items()}
        pattern = copy.get("pattern")
        if isinstance(pattern, str) and pattern.endswith("$") and not pattern.endswith("\\$"):
            copy["pattern"] = pattern[:-1] + r"\Z"
        if "$schema" in copy:
            copy["$schema"] = "http://json-schema.org/draft-07/schema#"
        return copy
    if isinstance(schema, list):
        return [_ecma_anchored(item) for item in schema]
    return schema


# The hot path: a compiled validator answers "valid" in microseconds. It is only trusted to say
# *valid*; anything it refuses goes to the authoritative jsonschema validator above, which also
# produces the error detail. It counts 1.0 as an integer, so documents whose integer fields hold
# anything but a real int never take the fast path.
_FAST_KNOWN: Final = fastjsonschema.compile(_ecma_anchored(SCHEMA),
                                            formats={"date-time": _is_date_time})
_FAST_UNKNOWN: Final = fastjsonschema.compile(_ecma_anchored(_UNKNOWN_SCHEMA),
                                              formats={"date-time": _is_date_time})
_INTEGER_FIELDS: Final = tuple(name for name, spec in SCHEMA["properties"].items()
                               if spec.get("type") == "integer")


def _fast_valid(fast: Any, document: dict[str, Any]) -> bool:
    if any(name in document and type(document[name]) is not int for name in _INTEGER_FIELDS):
        return False
    try:
        fast(document)
    except fastjsonschema.JsonSchemaException:
        return False
    return True


def _validate(validator: Any, document: dict[str, Any]) -> None:
    fast = _FAST_KNOWN if validator is _KNOWN_VALIDATOR else _FAST_UNKNOWN
    if _fast_valid(fast, document):
        return
    errors = sorted(
        validator.iter_errors(document),
        key=lambda e: (len(e.absolute_path), [str(p) for p in e.absolute_path], str(e.validator)),
    )
    if errors:
        raise PayloadRejected(PayloadReason.SCHEMA_VIOLATION, _describe(errors[0]))


# --- the message ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WebhookMessage:
    """One validated webhook body.

    Typed fields are filled only for known types; ``raw`` always holds the whole decoded body,
    unknown fields included (B.3: unknown fields are kept). The repr shows identity only, since
    merchant names and unknown fields may carry card data.
    """

    type: str
    known_type: bool
    id: str
    created_at: datetime
    raw: dict[str, Any] = field(repr=False, compare=False, hash=False)
    advice: bool | None = None
    response_code: str | None = field(default=None, repr=False)
    token_id: str | None = field(default=None, repr=False)
    amount: int | None = field(default=None, repr=False)
    currency: str | None = field(default=None, repr=False)
    authorization_id: str | None = field(default=None, repr=False)
    token_status: contract.TokenStatus | None = field(default=None, repr=False)
    token_stage: contract.TokenStage | None = field(default=None, repr=False)
    merchant: dict[str, Any] | None = field(default=None, repr=False, compare=False, hash=False)

    @property
    def business_key(self) -> tuple[str, str, bool | None]:
        """Business identity (B.2): ``(type, id, advice)``.

        An authorization request and its advice share ``id``; ``advice`` keeps them apart so
        deduplication never swallows the advice. Other types are identified by ``id`` alone, so
        their ``advice`` slot is always ``None`` even if the body carries the field.
        """
        advice = self.advice if self.type == contract.MessageType.AUTHORIZATION else None
        return (self.type, self.id, advice)

    @property
    def finci_ids(self) -> frozenset[str]:
        """This message's own FINCI ids (``contract.FINCI_ID_FIELDS`` of FINCI's id form): kept
        as typed wherever the message is stored, although one in ten passes the Luhn check."""
        values = (self.raw.get(name) for name in contract.FINCI_ID_FIELDS)
        return frozenset(value for value in values
                         if isinstance(value, str) and contract.is_finci_id(value))

    @property
    def is_authorization_request(self) -> bool:
        """True when FINCI is waiting (3 s) for our approve/decline answer."""
        return (
            self.known_type
            and self.type == contract.MessageType.AUTHORIZATION
            and self.advice is False
        )

    @property
    def is_advice(self) -> bool:
        """True for the authoritative outcome of an authorization (carries ``response_code``)."""
        return (
            self.known_type
            and self.type == contract.MessageType.AUTHORIZATION
            and self.advice is True
        )


def parse_message(body: bytes) -> WebhookMessage:
    """Decode and validate one webhook body. Raises :class:`PayloadRejected` only."""
    if not isinstance(body, bytes | bytearray | memoryview):
        raise PayloadRejected(PayloadReason.NOT_BYTES)
    body = bytes(body)
    if len(body) > contract.WEBHOOK_MAX_BODY_BYTES:
        raise PayloadRejected(PayloadReason.TOO_LARGE)
    document = _decode(body)

    message_type = document.get("type")
    known = isinstance(message_type, str) and message_type in _KNOWN_TYPES
    _validate(_KNOWN_VALIDATOR if known else _UNKNOWN_VALIDATOR, document)

    created_at = parse_timestamp(document["created_at"])
    if not known:
        return WebhookMessage(
            type=document["type"],
            known_type=False,
            id=document["id"],
            created_at=created_at,
            raw=document,
        )

    amount = document.get("amount")
    if amount is not None and amount > contract.AMOUNT_MAX_MINOR_UNITS:
        raise PayloadRejected(PayloadReason.SCHEMA_VIOLATION, "amount: maximum")
    token_status = document.get("token_status")
    token_stage = document.get("token_stage")
    merchant = document.get("merchant")
    return WebhookMessage(
        type=contract.MessageType(message_type).value,
        known_type=True,
        id=document["id"],
        created_at=created_at,
        raw=document,
        advice=document.get("advice"),
        response_code=document.get("response_code"),
        token_id=document.get("token_id"),
        amount=amount,
        currency=document.get("currency"),
        authorization_id=document.get("authorization_id"),
        token_status=contract.TokenStatus(token_status) if token_status is not None else None,
        token_stage=contract.TokenStage(token_stage) if token_stage is not None else None,
        merchant=dict(merchant) if merchant is not None else None,
    )
