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
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from console.db import Base
from console.four_eyes import RequestStatus, request_table_args

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


# What a key action request asks for (console.keys.approvals.KeyAction).
KEY_ACTIONS = ("webhook_secret.add", "inventory.record_configured", "credential.activate",
               "credential.schedule_retire", "credential.retire", "credential.revoke",
               "card_data.generate", "card_data.activate", "card_data.retire",
               "card_data.revoke")


class KeyActionRequest(Base):
    """A key or credential action waiting for a second person (KEY_ACTIONS_REQUIRE_SECOND_
    APPROVER), or decided. ``params`` says what to do, never with a secret value: a new webhook
    secret is staged in the secret store when it is asked for and named here."""

    __tablename__ = "key_action_request"
    __table_args__ = (
        *request_table_args("key_action_request", "subject"),
        CheckConstraint("action IN (" + ", ".join(repr(a) for a in KEY_ACTIONS) + ")",
                        name="action_known"),
        CheckConstraint("environment IN ('sandbox', 'production')", name="environment_known"),
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    action: Mapped[str] = mapped_column(String(40))
    # What the action is about, e.g. ``credential:12``, ``card_data_key:cd-…``,
    # ``webhook_secret:production``: one pending request per subject.
    subject: Mapped[str] = mapped_column(String(120))
    environment: Mapped[str] = mapped_column(String(20))
    # JSON: the action's arguments (credential id, kid, overlap hours, staged store name...).
    params: Mapped[str] = mapped_column(Text, default="{}")
    # One line for the page and the CLI, e.g. "Revoke webhook secret 3f2a… (#12)".
    summary: Mapped[str] = mapped_column(String(300))
    reason: Mapped[str] = mapped_column(String(500))
    requested_by: Mapped[str] = mapped_column(String(200))
    requested_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]
    status: Mapped[str] = mapped_column(String(10), default=RequestStatus.PENDING)
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[dt.datetime | None]
