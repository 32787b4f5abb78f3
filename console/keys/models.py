"""The credential and key inventory: what exists, for which environment, in which state.

One row per credential or key (``credential``), one row per state change (``credential_event``,
the rotation history). Nothing here holds a secret value: a row names where the value lives in
the secret store (``store_name``, or none for a value configured outside the console) and its
fingerprint. ``kind`` is an open vocabulary (``console.keys.inventory.Kind``) so new kinds of
key need no migration; ``environment`` and ``status`` are closed and checked by the database.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from console.db import Base

ID = BigInteger().with_variant(Integer, "sqlite")
STATUSES = ("pending", "active", "retiring", "retired", "revoked")


class Credential(Base):
    __tablename__ = "credential"
    __table_args__ = (
        UniqueConstraint("kind", "environment", "fingerprint",
                         name="uq_credential_kind_environment_fingerprint"),
        CheckConstraint("environment IN ('sandbox', 'production')", name="environment_known"),
        CheckConstraint("status IN ('pending', 'active', 'retiring', 'retired', 'revoked')",
                        name="status_known"),
        CheckConstraint("status != 'retiring' OR retire_after IS NOT NULL",
                        name="retiring_has_deadline"),
        Index("ix_credential_environment_kind_status", "environment", "kind", "status"),
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    environment: Mapped[str] = mapped_column(String(20))
    fingerprint: Mapped[str] = mapped_column(String(100))
    # Where the value lives in the secret store; None: configured outside the console (a
    # platform variable or file the inventory only records).
    store_name: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[dt.datetime]
    created_by: Mapped[str] = mapped_column(String(200))
    activated_at: Mapped[dt.datetime | None]
    expires_at: Mapped[dt.datetime | None]
    # While retiring: still accepted until this instant, refused after it.
    retire_after: Mapped[dt.datetime | None]
    retired_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]
    last_used_at: Mapped[dt.datetime | None]


class CredentialEvent(Base):
    __tablename__ = "credential_event"
    __table_args__ = (Index("ix_credential_event_credential_at", "credential_id", "at"),)

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    credential_id: Mapped[int] = mapped_column(ID, ForeignKey("credential.id"))
    at: Mapped[dt.datetime]
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(String(500))
