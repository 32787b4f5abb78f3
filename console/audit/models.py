from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, CheckConstraint, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from console.audit.chain import GENESIS_HASH
from console.db import Base

__all__ = ["GENESIS_HASH", "AuditCheckpoint", "AuditEvent", "AuditHead"]


class AuditEvent(Base):
    """One audited action. Rows are never updated or deleted (database triggers refuse it)."""

    __tablename__ = "audit_event"
    __table_args__ = (
        CheckConstraint("seq > 0", name="seq_positive"),
        CheckConstraint("outcome IN ('success', 'failure', 'denied')", name="outcome_known"),
        # Rows of some actions, newest first (the "what changed" feed, the log filtered by
        # action); serves lookups by action alone too.
        Index("ix_audit_event_action_seq", "action", "seq"),
    )

    # Position in the chain, assigned under the audit_head lock: gaps mean deleted rows.
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                     primary_key=True, autoincrement=False)
    occurred_at: Mapped[dt.datetime] = mapped_column(index=True)
    actor_type: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[str] = mapped_column(String(200), index=True)
    action: Mapped[str] = mapped_column(String(80))
    target_type: Mapped[str | None] = mapped_column(String(40))
    target_id: Mapped[str | None] = mapped_column(String(200), index=True)
    outcome: Mapped[str] = mapped_column(String(10))
    source_ip: Mapped[str | None] = mapped_column(String(45))
    request_id: Mapped[str | None] = mapped_column(String(64))
    # Canonical JSON (sorted keys, no spaces): hashed exactly as stored.
    details: Mapped[str] = mapped_column(Text, default="{}")
    prev_hash: Mapped[str] = mapped_column(String(64))
    # sha256(prev_hash + canonical row); see console.audit.chain.
    row_hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditHead(Base):
    """Single row naming the chain's last event. Updating it first serialises writers on every
    backend (row lock on PostgreSQL, write lock on SQLite) so the chain never forks."""

    __tablename__ = "audit_head"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    row_hash: Mapped[str] = mapped_column(String(64))


class AuditCheckpoint(Base):
    """A signed statement that chain row ``seq`` had hash ``hash`` (console.audit.checkpoints).
    Append-only like audit_event: database triggers refuse UPDATE, DELETE (and TRUNCATE)."""

    __tablename__ = "audit_checkpoint"
    __table_args__ = (CheckConstraint("seq > 0", name="seq_positive"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The audit_event row vouched for; no foreign key, so the verifier can name a missing row.
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), unique=True)
    # That row's row_hash when it was signed.
    hash: Mapped[str] = mapped_column(String(64))
    signed_at: Mapped[dt.datetime]
    # SHA256:<hex> fingerprint of the signing key's public half (export_format.key_fingerprint).
    key_id: Mapped[str] = mapped_column(String(80))
    # Base64 Ed25519 over checkpoint_format.checkpoint_bytes(seq, hash, signed_at, key_id).
    signature: Mapped[str] = mapped_column(String(100))


class AuditArchive(Base):
    """A signed bundle that holds audit rows ``first_seq``..``last_seq``, moved out of the table
    by retention (console.audit.retention). Append-only; its rows may then be deleted, and only
    they (the audit_event trigger allows DELETE at or below the newest ``last_seq``)."""

    __tablename__ = "audit_archive"
    __table_args__ = (CheckConstraint("first_seq > 0 AND last_seq >= first_seq", name="range"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    first_seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    last_seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                          unique=True)
    count: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    # The hash the bundle's first row links to, and its last row's hash: the remaining log
    # starts from ``last_hash``.
    anchor_prev_hash: Mapped[str] = mapped_column(String(64))
    last_hash: Mapped[str] = mapped_column(String(64))
    file_name: Mapped[str] = mapped_column(String(200))
    file_sha256: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(80))
    archived_at: Mapped[dt.datetime]
    archived_by: Mapped[str] = mapped_column(String(200))
