"""Card-data key pairs: generate, activate, retire, revoke (web page and CLI call these).

FINCI encrypts card data to a public key we give it (FINCI.md B.5). The RSA private key is
generated here, written as PKCS8 PEM to the secret store under ``card-data/keys/<kid>`` and
never anywhere else: not the database, not a log, not a response. The table keeps the public
key (SPKI PEM, for FINCI), its fingerprint and the lifecycle. At most
``contract.CARD_DATA_MAX_ACTIVE_KEYS`` keys are active at once, so a rotation is: generate the
new key, give FINCI its public key, activate it (both decrypt), retire the old one.

Revoking deletes the private key from the store at once, before the database commits: if that
commit then fails, the row still says ``active`` but decryption fails closed (no key in the
store), and revoking again finishes the job. Every action is audited in the caller's
transaction; services flush, never commit.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from console.audit.actions import AuditAction
from console.audit.services import Actor, Target, record
from console.db import utcnow
from console.finci import contract
from console.keys.card_data_models import CardDataKey, KeyStatus
from console.secrets.store import SecretStore

SECRET_PREFIX = "card-data/keys/"  # noqa: S105 - a secret-store path, not a secret
MAX_BITS = 8192
# Public exponent 65537, the only one worth using.
_EXPONENT = 65537


class CardDataKeyError(ValueError):
    """A refused key action: the message is for the operator (4xx, exit 1)."""


class UnknownKey(CardDataKeyError):
    pass


def secret_name(kid: str) -> str:
    return SECRET_PREFIX + kid


def spki_fingerprint(public_pem: bytes | str) -> str:
    """Lowercase hex SHA-256 of the SPKI DER, the way the inventory lists public keys."""
    data = public_pem.encode() if isinstance(public_pem, str) else public_pem
    key = serialization.load_pem_public_key(data)
    der = key.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def _new_kid(environment: str) -> str:
    # 12 hex characters: never 13 digits in a row, so a kid can never read as a card number.
    return f"cd-{environment}-{secrets.token_hex(6)}"


def _target(key: CardDataKey) -> Target:
    return Target("card_data_key", key.kid)


def _state(key: CardDataKey) -> dict:
    return {"status": key.status}


def get_key(session: Session, kid: str, environment: str) -> CardDataKey:
    """The key ``kid`` of this environment; a key of the other environment is unknown here."""
    key = session.scalar(select(CardDataKey).where(CardDataKey.kid == kid,
                                                   CardDataKey.environment == environment))
    if key is None:
        raise UnknownKey(f"no card-data key {kid[:64]!r} in {environment}")
    return key


def list_keys(session: Session, environment: str) -> list[CardDataKey]:
    return list(session.scalars(select(CardDataKey)
                                .where(CardDataKey.environment == environment)
                                .order_by(CardDataKey.created_at.desc(), CardDataKey.id.desc())))


def _active_count(session: Session, environment: str) -> int:
    return session.scalar(select(func.count()).select_from(CardDataKey).where(
        CardDataKey.environment == environment,
        CardDataKey.status == KeyStatus.ACTIVE.value)) or 0


def generate(session: Session, store: SecretStore, *, environment: str, actor: Actor,
             bits: int = contract.CARD_DATA_KEY_MIN_BITS,
             at: dt.datetime | None = None) -> CardDataKey:
    """A new ``pending`` key pair: private half to the store, public half and metadata here."""
    if not isinstance(bits, int) or not contract.CARD_DATA_KEY_MIN_BITS <= bits <= MAX_BITS:
        raise CardDataKeyError(f"key size must be {contract.CARD_DATA_KEY_MIN_BITS}.."
                               f"{MAX_BITS} bits")
    at = at or utcnow()
    private = rsa.generate_private_key(public_exponent=_EXPONENT, key_size=bits)
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    kid = _new_kid(environment)
    name = secret_name(kid)
    store.put(name, private.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    del private
    try:
        key = CardDataKey(kid=kid, environment=environment, status=KeyStatus.PENDING.value,
                          bits=bits, public_pem=public_pem.decode(),
                          fingerprint=spki_fingerprint(public_pem), secret_name=name,
                          created_at=at, created_by=actor.id)
        session.add(key)
        session.flush()
        record(session, actor=actor, action=AuditAction.KEYS_CARD_DATA_GENERATE,
               target=_target(key), at=at,
               details={"environment": environment, "bits": bits,
                        "fingerprint": key.fingerprint}, after=_state(key))
    except Exception:
        store.delete(name)  # no row, no audit: the private key must not outlive them
        raise
    return key


def activate(session: Session, kid: str, *, environment: str, actor: Actor,
             at: dt.datetime | None = None) -> CardDataKey:
    key = get_key(session, kid, environment)
    if key.status != KeyStatus.PENDING.value:
        raise CardDataKeyError(f"key {kid} is {key.status}: only a pending key can be activated")
    if _active_count(session, environment) >= contract.CARD_DATA_MAX_ACTIVE_KEYS:
        raise CardDataKeyError(f"{contract.CARD_DATA_MAX_ACTIVE_KEYS} keys are active already: "
                               "retire one first")
    at = at or utcnow()
    before = _state(key)
    key.status, key.activated_at = KeyStatus.ACTIVE.value, at
    session.flush()
    record(session, actor=actor, action=AuditAction.KEYS_CARD_DATA_ACTIVATE, target=_target(key),
           at=at, before=before, after=_state(key))
    return key


def retire(session: Session, kid: str, *, environment: str, actor: Actor, reason: str,
           at: dt.datetime | None = None) -> CardDataKey:
    """Stop decrypting with ``kid`` at once. Card data FINCI encrypted to it is unreadable from
    now on (FINCI must be sending to the new key already)."""
    reason = _reason(reason)
    key = get_key(session, kid, environment)
    if key.status not in (KeyStatus.PENDING.value, KeyStatus.ACTIVE.value):
        raise CardDataKeyError(f"key {kid} is {key.status} already")
    at = at or utcnow()
    before = _state(key)
    key.status, key.retired_at = KeyStatus.RETIRED.value, at
    session.flush()
    record(session, actor=actor, action=AuditAction.KEYS_CARD_DATA_RETIRE, target=_target(key),
           at=at, before=before, after=_state(key), details={"reason": reason})
    return key


def revoke(session: Session, store: SecretStore, kid: str, *, environment: str, actor: Actor,
           reason: str, at: dt.datetime | None = None) -> CardDataKey:
    """The key is (or may be) compromised: refuse it and destroy its private half now."""
    reason = _reason(reason)
    key = get_key(session, kid, environment)
    if key.status == KeyStatus.REVOKED.value:
        raise CardDataKeyError(f"key {kid} is revoked already")
    at = at or utcnow()
    before = _state(key)
    key.status, key.revoked_at = KeyStatus.REVOKED.value, at
    session.flush()
    record(session, actor=actor, action=AuditAction.KEYS_CARD_DATA_REVOKE, target=_target(key),
           at=at, before=before, after=_state(key), details={"reason": reason})
    store.delete(key.secret_name)
    return key


REASON_MIN, REASON_MAX = 5, 500


def _reason(reason: str | None) -> str:
    text = (reason or "").strip()
    if not REASON_MIN <= len(text) <= REASON_MAX:
        raise CardDataKeyError(f"a reason of {REASON_MIN} to {REASON_MAX} characters is required")
    return text


def as_dict(key: CardDataKey) -> dict:
    """What may be shown or printed: never the private key."""
    return {"kid": key.kid, "environment": key.environment, "status": key.status,
            "bits": key.bits, "fingerprint": key.fingerprint, "created_at": key.created_at,
            "created_by": key.created_by, "activated_at": key.activated_at,
            "retired_at": key.retired_at, "revoked_at": key.revoked_at,
            "last_used_at": key.last_used_at}


def configured_store(app) -> SecretStore:
    """The app's secret store (``SECRETS_BACKEND``, console.secrets.factory); card-data keys
    cannot be used without one."""
    from console.secrets.factory import app_store

    return require_store(app_store(app))


def require_store(store: SecretStore | None) -> SecretStore:
    """``store``, or SecretStoreError saying card-data keys need one."""
    from console.secrets.store import SecretStoreError

    if store is None:
        raise SecretStoreError("no secret store is configured: card-data keys are unavailable")
    return store
