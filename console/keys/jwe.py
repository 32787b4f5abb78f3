"""Decrypting FINCI's card-data JWE (FINCI.md B.5) with joserfc; the only place that does.

``decrypt`` accepts exactly one shape: a compact JWE whose protected header says
``RSA-OAEP-256`` / ``A256GCM`` and names with ``kid`` an *active* key of this environment. Any
other algorithm, a missing, unknown, pending, retired or revoked key, a key of the other
environment, or a token that fails to decrypt is a ``CardDataRefused`` with a short reason
code, and nothing else happens. The plaintext is returned to the caller only: this module
never logs, stores or renders it, and its exceptions carry reason codes, never token or
plaintext text (joserfc's own messages are dropped, not chained).
"""

from __future__ import annotations

import datetime as dt
import json

from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from console.db import utcnow
from console.finci import contract
from console.keys.card_data_models import CardDataKey, KeyStatus
from console.secrets.store import SecretStore, SecretStoreError

# joserfc refuses every algorithm not listed here, in the header and when decrypting.
_REGISTRY = jwe.JWERegistry(algorithms=[contract.CARD_DATA_JWE_ALG, contract.CARD_DATA_JWE_ENC])


class CardDataRefused(Exception):
    """``reason`` is a short code safe for audit details and messages."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def header(token: str) -> dict:
    """The protected header, checked for our algorithms and a ``kid``; no key is touched."""
    if not isinstance(token, str) or not 0 < len(token) <= contract.CARD_DATA_JWE_MAX_LENGTH:
        raise CardDataRefused("malformed")
    if token.count(".") != 4:
        raise CardDataRefused("malformed")
    try:
        protected = jwe.extract_compact(token.encode("ascii"), _REGISTRY).protected
    except (JoseError, ValueError, UnicodeError):
        raise CardDataRefused("malformed") from None
    if protected.get("alg") != contract.CARD_DATA_JWE_ALG:
        raise CardDataRefused("algorithm_refused")
    if protected.get("enc") != contract.CARD_DATA_JWE_ENC:
        raise CardDataRefused("encryption_refused")
    kid = protected.get("kid")
    if not isinstance(kid, str) or not 0 < len(kid) <= 64:
        raise CardDataRefused("kid_missing")
    return protected


def _usable_key(session: Session, kid: str, environment: str) -> CardDataKey:
    key = session.scalar(select(CardDataKey).where(CardDataKey.kid == kid,
                                                   CardDataKey.environment == environment))
    if key is None:
        raise CardDataRefused("kid_unknown")
    if key.status != KeyStatus.ACTIVE.value:
        raise CardDataRefused(f"key_{key.status}")
    return key


def decrypt(session: Session, store: SecretStore, token: str, *, environment: str,
            at: dt.datetime | None = None) -> bytes:
    """The plaintext of ``token``, or ``CardDataRefused``. Marks the key's ``last_used_at``."""
    protected = header(token)
    key = _usable_key(session, protected["kid"], environment)
    try:
        private = RSAKey.import_key(store.get(key.secret_name))
    except SecretStoreError:
        raise CardDataRefused("key_unavailable") from None
    try:
        plaintext = jwe.decrypt_compact(token, private, registry=_REGISTRY).plaintext
    except (JoseError, ValueError):
        raise CardDataRefused("undecryptable") from None
    finally:
        del private
    key.last_used_at = at or utcnow()
    session.flush()
    return plaintext or b""


def card_number(plaintext: bytes) -> tuple[str, str | None]:
    """(full number, expiry) from a decrypted payload (contract.CARD_DATA_*_FIELD)."""
    try:
        document = json.loads(plaintext)
    except ValueError:
        raise CardDataRefused("payload_malformed") from None
    number = document.get(contract.CARD_DATA_NUMBER_FIELD) if isinstance(document, dict) else None
    if not isinstance(number, str) or not number.isascii() or not number.isdigit() \
            or not 13 <= len(number) <= 19:
        raise CardDataRefused("payload_malformed")
    expiry = document.get(contract.CARD_DATA_EXPIRY_FIELD)
    return number, expiry if isinstance(expiry, str) and len(expiry) <= 7 else None


def encrypt_for(public_pem: str, kid: str, plaintext: bytes) -> str:
    """A token the way FINCI makes one (simulator, demo data and tests): to our public key."""
    public = RSAKey.import_key(public_pem)
    return jwe.encrypt_compact({"alg": contract.CARD_DATA_JWE_ALG,
                                "enc": contract.CARD_DATA_JWE_ENC, "kid": kid},
                               plaintext, public, registry=_REGISTRY)
