"""Card-data key pairs (metadata only) and the encrypted card data FINCI sent us.

The private key of a ``CardDataKey`` lives only in the secret store (``secret_name``); this
table keeps what may be listed beside the general credential inventory: the key id FINCI puts
in the JWE header, the environment, the public key and its fingerprint, and the lifecycle.
``CardDataEnvelope`` holds JWE ciphertext exactly as FINCI sent it, never a plaintext.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from console.db import Base, utcnow
from console.finci import contract

ID = BigInteger().with_variant(Integer, "sqlite")


class KeyStatus(StrEnum):
    """The inventory's shared vocabulary. A card-data key goes pending → active → retired, or
    to revoked from any state; ``retiring`` is kept for parity with the inventory (a webhook
    secret in its overlap window) and is not used for card-data keys: during a rotation both
    keys are simply ``active``."""

    PENDING = "pending"    # generated; public key not yet in use by FINCI
    ACTIVE = "active"      # decrypts
    RETIRING = "retiring"
    RETIRED = "retired"    # refused; private key kept in the store until revoked
    REVOKED = "revoked"    # refused; private key deleted from the store


def _in(column: str, values) -> str:
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"


class CardDataKey(Base):
    __tablename__ = "card_data_key"
    __table_args__ = (
        CheckConstraint(_in("status", KeyStatus), name="status_known"),
        CheckConstraint(_in("environment", ("sandbox", "production")), name="environment_known"),
        CheckConstraint(f"bits >= {contract.CARD_DATA_KEY_MIN_BITS}", name="bits_minimum"),
        CheckConstraint("(status IN ('active', 'retired', 'revoked')) OR activated_at IS NULL",
                        name="activated_only_when_used"),
        CheckConstraint("(status = 'revoked') = (revoked_at IS NOT NULL)",
                        name="revoked_at_with_status"),
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    # The JWE header ``kid``: ``cd-<environment>-<12 hex>``.
    kid: Mapped[str] = mapped_column(String(64), unique=True)
    environment: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(10), default=KeyStatus.PENDING.value)
    bits: Mapped[int] = mapped_column(Integer)
    # SPKI PEM: public, handed to FINCI; the private half is only at ``secret_name``.
    public_pem: Mapped[str] = mapped_column(Text)
    # Lowercase hex SHA-256 of the SPKI DER.
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    secret_name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))
    activated_at: Mapped[dt.datetime | None]
    retired_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]
    last_used_at: Mapped[dt.datetime | None]


class CardDataEnvelope(Base):
    """The latest JWE FINCI sent for a card (contract.CARD_DATA_ITEM_FIELD). Ciphertext only:
    readable only while its key is active, and only through console.keys.jwe."""

    __tablename__ = "card_data_envelope"

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    card_id: Mapped[int] = mapped_column(ID, ForeignKey("card.id"), unique=True)
    kid: Mapped[str] = mapped_column(String(64), index=True)
    token: Mapped[str] = mapped_column(Text)
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
