"""Webhook authenticity: Standard Webhooks signatures (assumption B.1).

FINCI's portal documents no signature scheme; we assume Standard Webhooks until FINCI confirms
otherwise. This module is written from the specification rather than wrapping the reference
library because that library raises ``ValueError``/``binascii.Error``/``UnicodeDecodeError`` on
hostile headers; ingress must turn every bad input into a 401, so the only exception that ever
leaves :func:`verify` is :class:`SignatureRejected`.

Verification works on the raw body bytes, before anything is decoded or parsed, and compares in
constant time against every candidate signature under every active secret, so neither the
position of a matching signature nor which secret matched shows up in the timing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets as _secrets
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from console.finci import contract

_ID_RE: Final = re.compile(rf"[\x21-\x7e]{{1,{contract.WEBHOOK_ID_MAX_LENGTH}}}")
_TIMESTAMP_RE: Final = re.compile(rf"[0-9]{{1,{contract.WEBHOOK_TIMESTAMP_MAX_DIGITS}}}")
# Strict standard base64 (with padding) of exactly 32 bytes: 43 symbols and one '='.
_V1_SIGNATURE_RE: Final = re.compile(r"[A-Za-z0-9+/]{43}=")
_SECRET_BODY_RE: Final = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_DIGEST_BYTES: Final = 32


class RejectReason(StrEnum):
    """Why a delivery was refused. Short fixed codes: safe for logs, metrics and records."""

    MISSING_HEADER = "missing_header"
    MALFORMED_ID = "malformed_id"
    MALFORMED_TIMESTAMP = "malformed_timestamp"
    TIMESTAMP_TOO_OLD = "timestamp_too_old"
    TIMESTAMP_TOO_NEW = "timestamp_too_new"
    MALFORMED_SIGNATURE = "malformed_signature"
    NO_SUPPORTED_SIGNATURE = "no_supported_signature"
    SIGNATURE_MISMATCH = "signature_mismatch"
    BODY_NOT_BYTES = "body_not_bytes"
    BODY_TOO_LARGE = "body_too_large"
    # A configuration fault, not the sender's: still refused, because failing open is worse.
    NO_ACTIVE_SECRET = "no_active_secret"  # noqa: S105 - a reason code, not a secret


class SignatureRejected(Exception):
    """The delivery cannot be shown to come from FINCI. Carries a reason code, never input."""

    def __init__(self, reason: RejectReason, header: str | None = None) -> None:
        self.reason = reason
        # Only ever one of our own header-name constants, never anything from the request.
        self.header = header
        suffix = f" ({header})" if header else ""
        super().__init__(f"webhook signature rejected: {reason.value}{suffix}")


class InvalidWebhookSecret(ValueError):
    """A configured secret is not ``whsec_<base64>`` of an acceptable length.

    The message never contains the configured value: it may be a real secret with a typo.
    """


class WebhookSecret:
    """One webhook signing key. Its repr and str show only a fingerprint, never key bytes."""

    __slots__ = ("_fingerprint", "_key")

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes):
            raise InvalidWebhookSecret("webhook secret key must be bytes")
        if not contract.WEBHOOK_SECRET_MIN_BYTES <= len(key) <= contract.WEBHOOK_SECRET_MAX_BYTES:
            raise InvalidWebhookSecret(
                "webhook secret must decode to "
                f"{contract.WEBHOOK_SECRET_MIN_BYTES}..{contract.WEBHOOK_SECRET_MAX_BYTES} bytes"
            )
        self._key = key
        self._fingerprint = hashlib.sha256(key).hexdigest()[:8]

    @classmethod
    def parse(cls, value: str) -> WebhookSecret:
        """Parse ``whsec_<base64>`` as configured. Raises :class:`InvalidWebhookSecret`."""
        if not isinstance(value, str):
            raise InvalidWebhookSecret("webhook secret must be a string")
        value = value.strip()
        prefix = contract.WEBHOOK_SECRET_PREFIX
        # The prefix is required: it stops an API secret or a token pasted into the wrong
        # setting from being accepted as a webhook key.
        if not value.startswith(prefix):
            raise InvalidWebhookSecret(f"webhook secret must start with {prefix!r}")
        encoded = value[len(prefix) :]
        if not _SECRET_BODY_RE.fullmatch(encoded):
            raise InvalidWebhookSecret(f"webhook secret after {prefix!r} must be base64")
        try:
            key = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidWebhookSecret(f"webhook secret after {prefix!r} must be base64") from None
        return cls(key)

    @classmethod
    def generate(cls) -> WebhookSecret:
        """A fresh random 32-byte key, for the simulator and for tests."""
        return cls(_secrets.token_bytes(32))

    def export(self) -> str:
        """The ``whsec_`` form, for handing the key to a simulator or a secret store."""
        return contract.WEBHOOK_SECRET_PREFIX + base64.b64encode(self._key).decode("ascii")

    @property
    def fingerprint(self) -> str:
        """First 8 hex digits of SHA-256 of the key: names the key in logs and records."""
        return self._fingerprint

    label = fingerprint

    def _digest(self, signed_content: bytes) -> bytes:
        return hmac.new(self._key, signed_content, hashlib.sha256).digest()

    def __repr__(self) -> str:
        return f"WebhookSecret(fingerprint={self._fingerprint!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WebhookSecret):
            return NotImplemented
        return hmac.compare_digest(self._key, other._key)

    def __hash__(self) -> int:
        return hash(self._fingerprint)

    def __reduce__(self) -> object:
        # Pickling would write key bytes wherever the object goes (caches, task queues).
        raise TypeError("WebhookSecret cannot be pickled")


@dataclass(frozen=True, slots=True)
class VerifiedBy:
    """Proof of a successful verification: which key matched, by fingerprint only."""

    secret_fingerprint: str


def _signed_content(msg_id: str, timestamp: str, body: bytes) -> bytes:
    # The body is appended as bytes, never decoded: any decode/re-encode step could change what
    # is signed. The id/timestamp split is unambiguous because timestamps are digits only and a
    # JSON object body starts with '{' or whitespace, never with "<digits>.".
    return f"{msg_id}.{timestamp}.".encode("ascii") + body


def sign(secret: WebhookSecret, msg_id: str, timestamp: int | str, body: bytes) -> str:
    """The ``webhook-signature`` header value for one message (simulator and tests)."""
    digest = secret._digest(_signed_content(msg_id, str(timestamp), bytes(body)))
    return f"{contract.WEBHOOK_SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def signed_headers(
    secret: WebhookSecret, msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """All three Standard Webhooks headers for one message, as FINCI would send them."""
    return {
        contract.HEADER_WEBHOOK_ID: msg_id,
        contract.HEADER_WEBHOOK_TIMESTAMP: str(timestamp),
        contract.HEADER_WEBHOOK_SIGNATURE: sign(secret, msg_id, timestamp, body),
    }


def _header_text(value: object, name: str) -> str:
    """Header value as ASCII text; anything else is reported as missing or malformed."""
    if value is None or (isinstance(value, str | bytes | bytearray) and len(value) == 0):
        raise SignatureRejected(RejectReason.MISSING_HEADER, name)
    malformed = {
        contract.HEADER_WEBHOOK_ID: RejectReason.MALFORMED_ID,
        contract.HEADER_WEBHOOK_TIMESTAMP: RejectReason.MALFORMED_TIMESTAMP,
        contract.HEADER_WEBHOOK_SIGNATURE: RejectReason.MALFORMED_SIGNATURE,
    }[name]
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode("ascii")
        except UnicodeDecodeError:
            raise SignatureRejected(malformed, name) from None
    if not isinstance(value, str):
        raise SignatureRejected(malformed, name)
    if not value.isascii():
        raise SignatureRejected(malformed, name)
    return value


def _candidate_digests(header: str) -> list[bytes]:
    """Decoded v1 signatures from the header; unknown versions are skipped, not trusted."""
    name = contract.HEADER_WEBHOOK_SIGNATURE
    if len(header) > contract.WEBHOOK_SIGNATURE_HEADER_MAX_LENGTH:
        raise SignatureRejected(RejectReason.MALFORMED_SIGNATURE, name)
    # Split on the space character only, as the spec says; other whitespace stays inside an
    # entry and makes it malformed rather than silently becoming a separator.
    entries = [entry for entry in header.split(" ") if entry]
    if not entries or len(entries) > contract.WEBHOOK_SIGNATURE_MAX_ENTRIES:
        raise SignatureRejected(RejectReason.MALFORMED_SIGNATURE, name)
    digests: list[bytes] = []
    for entry in entries:
        version, sep, value = entry.partition(",")
        # Every entry must at least be "<version>,<value>"; a bare "v1" or an empty part means
        # the header was mangled, and guessing what was meant is how forgeries get through.
        if not sep or not version or not value:
            raise SignatureRejected(RejectReason.MALFORMED_SIGNATURE, name)
        if version != contract.WEBHOOK_SIGNATURE_VERSION:
            continue  # e.g. v1a (asymmetric): allowed by the spec, not supported by us
        if not _V1_SIGNATURE_RE.fullmatch(value):
            raise SignatureRejected(RejectReason.MALFORMED_SIGNATURE, name)
        digest = base64.b64decode(value, validate=True)
        if len(digest) != _DIGEST_BYTES:  # pragma: no cover - guaranteed by the pattern
            raise SignatureRejected(RejectReason.MALFORMED_SIGNATURE, name)
        digests.append(digest)
    if not digests:
        raise SignatureRejected(RejectReason.NO_SUPPORTED_SIGNATURE, name)
    return digests


def verify(
    secrets: Iterable[WebhookSecret],
    msg_id: str | bytes | None,
    timestamp_header: str | bytes | None,
    signature_header: str | bytes | None,
    body: bytes,
    now: float,
    *,
    tolerance_seconds: int = contract.WEBHOOK_TIMESTAMP_TOLERANCE_SECONDS,
    max_body_bytes: int = contract.WEBHOOK_MAX_BODY_BYTES,
) -> VerifiedBy:
    """Check one delivery's Standard Webhooks signature against the active secrets.

    ``now`` is injected so the tolerance window is testable and one clock reading serves the
    whole request. Returns which secret matched; raises :class:`SignatureRejected` and nothing
    else, whatever the inputs.
    """
    active = [s for s in secrets if isinstance(s, WebhookSecret)]

    msg_id_text = _header_text(msg_id, contract.HEADER_WEBHOOK_ID)
    timestamp_text = _header_text(timestamp_header, contract.HEADER_WEBHOOK_TIMESTAMP)
    signature_text = _header_text(signature_header, contract.HEADER_WEBHOOK_SIGNATURE)

    if not isinstance(body, bytes | bytearray | memoryview):
        raise SignatureRejected(RejectReason.BODY_NOT_BYTES)
    body_bytes = bytes(body)
    if len(body_bytes) > max_body_bytes:
        raise SignatureRejected(RejectReason.BODY_TOO_LARGE)

    if not _ID_RE.fullmatch(msg_id_text):
        raise SignatureRejected(RejectReason.MALFORMED_ID, contract.HEADER_WEBHOOK_ID)

    # fullmatch with [0-9], not int() or str.isdigit(): those accept signs, whitespace,
    # underscores and non-ASCII digits, each a different string signing the same instant.
    if not _TIMESTAMP_RE.fullmatch(timestamp_text):
        raise SignatureRejected(RejectReason.MALFORMED_TIMESTAMP, contract.HEADER_WEBHOOK_TIMESTAMP)
    timestamp = int(timestamp_text)
    # Written as "not within" so that a NaN clock reading fails closed.
    if not timestamp >= now - tolerance_seconds:
        raise SignatureRejected(RejectReason.TIMESTAMP_TOO_OLD, contract.HEADER_WEBHOOK_TIMESTAMP)
    if not timestamp <= now + tolerance_seconds:
        raise SignatureRejected(RejectReason.TIMESTAMP_TOO_NEW, contract.HEADER_WEBHOOK_TIMESTAMP)

    candidates = _candidate_digests(signature_text)

    if not active:
        raise SignatureRejected(RejectReason.NO_ACTIVE_SECRET)

    signed_content = _signed_content(msg_id_text, timestamp_text, body_bytes)
    matched: WebhookSecret | None = None
    # No early exit: every (secret, candidate) pair is compared so the work done does not depend
    # on where, or whether, a match is found.
    for secret in active:
        expected = secret._digest(signed_content)
        for candidate in candidates:
            if hmac.compare_digest(expected, candidate) and matched is None:
                matched = secret
    if matched is None:
        raise SignatureRejected(RejectReason.SIGNATURE_MISMATCH)
    return VerifiedBy(secret_fingerprint=matched.fingerprint)
