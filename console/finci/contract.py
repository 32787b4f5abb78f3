"""Named constants of the FINCI contract: portal facts (A) and our assumptions (B).

Every literal the rest of the console needs to talk to FINCI is here, so that a confirmation or
correction from FINCI is a one-file change. Items marked "B.n" are assumptions from
``FINCI.md`` section B; unmarked items are stated by FINCI's portal (section A).
"""

from __future__ import annotations

import json
import re
from enum import IntEnum, StrEnum
from types import MappingProxyType
from typing import Final

# --- Webhook authenticity (B.1: Standard Webhooks) -------------------------------------------

# Lower case because WSGI/Flask header lookups are case-insensitive but our records and tests
# compare names literally.
HEADER_WEBHOOK_ID: Final = "webhook-id"
HEADER_WEBHOOK_TIMESTAMP: Final = "webhook-timestamp"
HEADER_WEBHOOK_SIGNATURE: Final = "webhook-signature"
WEBHOOK_HEADERS: Final = (HEADER_WEBHOOK_ID, HEADER_WEBHOOK_TIMESTAMP, HEADER_WEBHOOK_SIGNATURE)

WEBHOOK_SECRET_PREFIX: Final = "whsec_"  # noqa: S105 - a format prefix, not a secret
# Standard Webhooks recommends 24..64 byte keys; shorter keys are refused at configuration time
# rather than silently weakening every verification.
WEBHOOK_SECRET_MIN_BYTES: Final = 24
WEBHOOK_SECRET_MAX_BYTES: Final = 64

WEBHOOK_SIGNATURE_VERSION: Final = "v1"
# Both directions, inclusive: a delivery exactly 300 s old or 300 s ahead is still accepted.
WEBHOOK_TIMESTAMP_TOLERANCE_SECONDS: Final = 300

# Bounds on header sizes keep verification O(small) whatever an attacker sends, and stop Python's
# int() from ever seeing a multi-thousand-digit string.
WEBHOOK_ID_MAX_LENGTH: Final = 256
WEBHOOK_TIMESTAMP_MAX_DIGITS: Final = 12
WEBHOOK_SIGNATURE_HEADER_MAX_LENGTH: Final = 4096
WEBHOOK_SIGNATURE_MAX_ENTRIES: Final = 16

# --- Webhook body (B.3) -----------------------------------------------------------------------

# 256 KiB: far above any plausible message, small enough that a flood cannot exhaust memory.
WEBHOOK_MAX_BODY_BYTES: Final = 262_144
# Our own messages nest two levels (body -> merchant); 32 leaves room for FINCI's future fields
# while keeping recursion in the JSON parser and the validator shallow.
WEBHOOK_MAX_JSON_DEPTH: Final = 32
# B.3 (assumption; the portal states no maximum): no single amount exceeds 999,999,999,999
# minor units (almost 10 billion in a two-decimal currency, far above any card payment). Amounts
# live in signed 64-bit columns, and holds, balances and spend totals add them up: one amount
# near 2^63 was accepted here and then overflowed when posted (a message acknowledged to FINCI
# but never applied). With this bound about 9 million maximal amounts fit in one sum. Refused
# at the edge (400, nothing stored), and the console's amount filters use the same bound.
AMOUNT_MAX_MINOR_UNITS: Final = 999_999_999_999
# Identifier format (portal example, plus our assumption): FINCI's one published
# ``authorization_id`` is the 18-digit numeric string ``251001435963146785``. We assume every
# FINCI id has that form. One in ten such numbers passes the Luhn check and would look like a
# card number: in the fields FINCI fills with its ids, a value of exactly this form is an id,
# kept as typed (stored, searched, linked and shown), never masked. Anything else there (a
# 16-digit Luhn-valid number, say) is masked like free text. Card numbers of 18 digits exist but
# are rare; FINCI never puts a card number in an id field (it sends card data encrypted).
FINCI_ID_PATTERN: Final = re.compile(r"[0-9]{18}")
# The top-level message fields that carry FINCI ids.
FINCI_ID_FIELDS: Final = ("id", "authorization_id")


def is_finci_id(value: str) -> bool:
    """``value`` has the form of a FINCI id (not a card number, whatever its check digit)."""
    return FINCI_ID_PATTERN.fullmatch(value) is not None


# An unknown message type is stored and shown to operators, so its name is confined to a
# harmless charset (no control characters, no markup).
UNKNOWN_TYPE_PATTERN: Final = r"[A-Za-z0-9_.:-]{1,64}"


class MessageType(StrEnum):
    """Webhook ``type`` values we know how to process (B.3). Others are parked, never dropped."""

    AUTHORIZATION = "authorization"
    REVERSAL = "reversal"
    PRESENTMENT = "presentment"
    REFUND = "refund"
    CARD_STATUS = "card_status"


class TokenStatus(StrEnum):
    """Card ``token_status`` values, spelled exactly as the API spells them."""

    NEW = "new"
    ACTIVE = "active"
    BLOCKED = "blocked"
    CLOSED = "closed"
    COMPROMIZED = "compromized"  # sic: FINCI's API spelling, with a z
    DAMAGED = "damaged"
    DEACTIVATED = "deactivated"
    LOST = "lost"
    REFERRAL = "referral"
    STOLEN = "stolen"


class TokenStage(StrEnum):
    """Physical fulfilment stage of a card. Never decides whether a card can transact."""

    DIGITAL = "digital"
    PLASTIC_NOT_DELIVERED = "plastic_not_delivered"
    PLASTIC_DELIVERED = "plastic_delivered"


# The update-card-stage endpoint documents only these two targets; ``plastic_delivered`` is
# reported by FINCI, not requested by us.
REQUESTABLE_TOKEN_STAGES: Final = frozenset({TokenStage.DIGITAL, TokenStage.PLASTIC_NOT_DELIVERED})


class ResponseCode(StrEnum):
    """Known ``response_code`` values on advices. The set is open: other strings are valid."""

    APPROVED = "Approved"
    INSUFFICIENT_FUNDS = "InsufficientFunds"


# --- Answers to webhooks (B.4) ----------------------------------------------------------------

# FINCI turns an error, or no valid answer within this many seconds, into a decline.
AUTHORIZATION_ANSWER_DEADLINE_SECONDS: Final = 3

AUTHORIZATION_APPROVE: Final = MappingProxyType({"status": "success"})
AUTHORIZATION_DECLINE: Final = MappingProxyType({"status": "error"})
# Pre-serialised so that every answer, including the replay to a duplicate delivery, is the
# same bytes.
AUTHORIZATION_APPROVE_BODY: Final = json.dumps(dict(AUTHORIZATION_APPROVE)).encode()
AUTHORIZATION_DECLINE_BODY: Final = json.dumps(dict(AUTHORIZATION_DECLINE)).encode()


def authorization_answer_body(approve: bool) -> bytes:
    """The exact response body for an authorization request: approve or decline."""
    return AUTHORIZATION_APPROVE_BODY if approve else AUTHORIZATION_DECLINE_BODY


class IngressAnswer(IntEnum):
    """HTTP status per ingress outcome (B.4). Never 3xx, never 410: FINCI may stop delivering.

    A duplicate delivery gets the same answer as the first time, so it has no entry of its own.
    """

    ACCEPTED = 200  # authorization request answered, or any other message durably stored
    MALFORMED = 400
    UNVERIFIABLE = 401
    TOO_LARGE = 413
    STORAGE_UNAVAILABLE = 503  # always with Retry-After so FINCI retries rather than gives up


# Short, so a brief database outage costs FINCI one quick retry rather than a long backoff.
STORAGE_UNAVAILABLE_RETRY_AFTER_SECONDS: Final = 5

# --- Outbound Card API (A, and B.6 for the signature string) ----------------------------------

CARD_API_HEADER_TOKEN: Final = "X-Auth-Token"  # noqa: S105 - a header name
CARD_API_HEADER_TIMESTAMP: Final = "X-Auth-Timestamp"
CARD_API_HEADER_SIGNATURE: Final = "X-Auth-Signature"

CARD_API_PATH_GET_CARDS: Final = "/v1/get-cards"
CARD_API_PATH_UPDATE_STATUS: Final = "/v1/update-card-status/{token_id}"
CARD_API_PATH_UPDATE_STAGE: Final = "/v1/update-card-stage/{token_id}"

CARD_API_STATUS_SUCCESS: Final = "success"
CARD_API_STATUS_ERROR: Final = "error"

# ``XXXX-XX**-****-XXXX``: first six and last four digits only. Anything else in
# ``card_number`` is treated as a possible full card number and never kept as received.
MASKED_CARD_NUMBER_PATTERN: Final = r"[0-9]{4}-[0-9]{2}\*\*-\*\*\*\*-[0-9]{4}"
EXPIRATION_DATE_PATTERN: Final = r"[0-9]{4}-(0[1-9]|1[0-2])"
TOKEN_ID_MAX_LENGTH: Final = 64

# --- Card data (B.5) --------------------------------------------------------------------------

# Where FINCI returns card data it is a JWE compact token: RSA-OAEP-256 key wrapping with one of
# our RSA keys (3072 bits or more) and A256GCM content encryption; the protected header's
# ``kid`` names our key. We hand FINCI the public key as SPKI PEM. Nothing else is accepted.
CARD_DATA_JWE_ALG: Final = "RSA-OAEP-256"
CARD_DATA_JWE_ENC: Final = "A256GCM"
CARD_DATA_KEY_MIN_BITS: Final = 3072
# Assumption (the portal names no fields): the decrypted payload is a JSON object whose
# ``card_number`` holds the full number (digits, 13..19) and ``expiration_date`` ``YYYY-MM``.
CARD_DATA_NUMBER_FIELD: Final = "card_number"
CARD_DATA_EXPIRY_FIELD: Final = "expiration_date"
# Assumption: FINCI's get-cards item may carry the token in this field (absent: no card data).
CARD_DATA_ITEM_FIELD: Final = "encrypted_card_data"
# Far above a JWE of a card number under a 4096-bit key; refused before any parsing.
CARD_DATA_JWE_MAX_LENGTH: Final = 8192
# How many of our keys may decrypt at once: the current one and the one being rotated out.
CARD_DATA_MAX_ACTIVE_KEYS: Final = 2
