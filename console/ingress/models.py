"""The inbox: one row per distinct message, one per accepted delivery; refusals are counted.

Idempotency lives in the database: ``webhook_id`` and ``business_key`` are both UNIQUE on
``webhook_message``, so however many deliveries race, one message row exists and only that row
is ever processed. Deliveries (duplicates included) are appended to ``webhook_delivery``.

Bodies are stored with card numbers masked (``console.security.redaction.redact_json``): test
fixtures carry card numbers on purpose and no table may hold a full one. Duplicate and conflict
detection therefore compares ``body_sha256``, the hash of the ORIGINAL bytes as signed, never the
stored text. The stored body cannot be re-verified against the signature (it is not the signed
bytes); the verification result is recorded instead (``verified_by``).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from console.counters import minute_of  # also used by callers of this module
from console.db import Base

ID = BigInteger().with_variant(Integer, "sqlite")


class MessageStatus:
    PENDING = "pending"        # stored, waiting for (or between) processing attempts
    PROCESSING = "processing"  # claimed by a worker under a lease
    PROCESSED = "processed"    # applied, or recorded as a no-op
    DEAD = "dead"              # gave up after the maximum attempts; needs an operator
    PARKED = "parked"          # unknown type: kept for review, never dropped
    ALL = (PENDING, PROCESSING, PROCESSED, DEAD, PARKED)


class Disposition:
    FIRST = "first"          # created the message
    DUPLICATE = "duplicate"  # same message again (same id, or same business key), same bytes
    CONFLICT = "conflict"    # same id or business key, different bytes: flagged, never applied
    ALL = (FIRST, DUPLICATE, CONFLICT)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class StoredMessage(Base):
    """One distinct message (the inbox row): what was received, what we answered, and its
    processing state."""

    __tablename__ = "webhook_message"
    __table_args__ = (
        CheckConstraint(_in("status", MessageStatus.ALL), name="status_known"),
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        # The worker's claim query: due messages in arrival order.
        Index("ix_webhook_message_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    # FINCI's ``webhook-id`` header: one message, unchanged across its retries (B.2).
    webhook_id: Mapped[str] = mapped_column(String(256), unique=True)
    # ``type:id`` or ``authorization:id:request|advice`` (B.2): a second webhook-id for the same
    # business message is a duplicate too, so it can never be processed twice.
    business_key: Mapped[str] = mapped_column(String(200), unique=True)
    # Not indexed (nor token_id): every index is paid for on the ingress hot path, and these
    # low-selectivity filters only serve console searches that are bounded anyway.
    type: Mapped[str] = mapped_column(String(64))
    known_type: Mapped[bool] = mapped_column(Boolean)
    finci_id: Mapped[str] = mapped_column(String(64), index=True)
    advice: Mapped[bool | None] = mapped_column(Boolean)
    token_id: Mapped[str | None] = mapped_column(String(64))
    # When FINCI created the message: the basis of delivery latency.
    finci_created_at: Mapped[dt.datetime]
    # The first verified delivery's ``webhook-timestamp`` (Unix seconds).
    webhook_timestamp: Mapped[int] = mapped_column(BigInteger)
    received_at: Mapped[dt.datetime] = mapped_column(index=True)
    # The body with card numbers masked (see module docstring); JSON text.
    body: Mapped[str] = mapped_column(Text)
    # SHA-256 (hex) of the original bytes: what duplicates and conflicts are compared by.
    body_sha256: Mapped[str] = mapped_column(String(64))
    body_masked: Mapped[bool] = mapped_column(Boolean, default=False)
    source_ip: Mapped[str | None] = mapped_column(String(45))
    # Fingerprint of the webhook secret that verified the first delivery.
    verified_by: Mapped[str] = mapped_column(String(16))
    # The exact answer given, so every duplicate delivery gets the same one (B.4).
    answer_status: Mapped[int] = mapped_column(Integer)
    answer_body: Mapped[str] = mapped_column(Text)
    # Authorization requests only: success/error and why (decisioning port).
    decision: Mapped[str | None] = mapped_column(String(10))
    decision_reason: Mapped[str | None] = mapped_column(String(200))

    # --- processing state (owned by console.pipeline) ---
    status: Mapped[str] = mapped_column(String(12), default=MessageStatus.PENDING)
    # Claims so far; counted when claimed so a message that kills its worker still dead-letters.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime]
    lease_token: Mapped[str | None] = mapped_column(String(32))
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[dt.datetime | None]
    processed_at: Mapped[dt.datetime | None]
    # applied | no_handler | noop | parked | dead
    outcome: Mapped[str | None] = mapped_column(String(20))
    last_error: Mapped[str | None] = mapped_column(Text)
    # The replay job that last re-queued this message, if any.
    replay_job_id: Mapped[int | None] = mapped_column(ID)


class WebhookDelivery(Base):
    """One accepted HTTP delivery: the first, and every duplicate or conflicting one after."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        CheckConstraint(_in("disposition", Disposition.ALL), name="disposition_known"),
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    message_id: Mapped[int] = mapped_column(ID, ForeignKey("webhook_message.id"), index=True)
    webhook_id: Mapped[str] = mapped_column(String(256))
    received_at: Mapped[dt.datetime] = mapped_column(index=True)
    disposition: Mapped[str] = mapped_column(String(10))
    body_sha256: Mapped[str] = mapped_column(String(64))
    # Conflicts only: the differing body (masked), kept for the reviewer.
    conflict_body: Mapped[str | None] = mapped_column(Text)
    webhook_timestamp: Mapped[int] = mapped_column(BigInteger)
    # The client as established by the source checks; the TCP peer may be a trusted proxy.
    source_ip: Mapped[str | None] = mapped_column(String(45))
    peer_ip: Mapped[str | None] = mapped_column(String(45))
    verified_by: Mapped[str] = mapped_column(String(16))
    # Headers of interest as JSON (never the signature values or anything secret).
    headers: Mapped[str] = mapped_column(Text, default="{}")
    answer_status: Mapped[int] = mapped_column(Integer)


class WebhookRejection(Base):
    """Refused attempts, counted: one row per (minute, source address, reason). Never the body.

    Unauthenticated traffic must not become one write per request: every refusal is an atomic
    upsert (``services.record_rejection``) that adds to ``count`` and moves ``last_seen_at``, so
    a flood from one address costs one row a minute per reason, however many processes take it.
    ``detail``, ``http_status``, ``peer_ip`` and ``webhook_id`` are one sample (the first that
    had one), not every value seen. How many refusals = the SUM of ``count``, never rows.
    """

    __tablename__ = "webhook_rejection"
    __table_args__ = (
        # The upsert's conflict target; led by ``minute`` so time windows and the retention
        # purge use it too (no further index on the hot path).
        UniqueConstraint("minute", "source_ip", "reason"),
        CheckConstraint("count > 0", name="count_positive"),
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    # The start of the UTC minute the refusals fall in (``minute_of``).
    minute: Mapped[dt.datetime]
    # The client as established by the source checks; "" when unknown (a key column cannot be
    # NULL: NULLs never conflict, so they would never be aggregated).
    source_ip: Mapped[str] = mapped_column(String(45), index=True)
    # A fixed code (signature, source, size, body): safe to show and to group by.
    reason: Mapped[str] = mapped_column(String(48))
    count: Mapped[int] = mapped_column(Integer, default=1)
    first_seen_at: Mapped[dt.datetime]
    last_seen_at: Mapped[dt.datetime]
    http_status: Mapped[int] = mapped_column(Integer)
    # Which header or field, from our own vocabulary only; never request content.
    detail: Mapped[str | None] = mapped_column(String(100))
    peer_ip: Mapped[str | None] = mapped_column(String(45))
    # Only when well-formed, and card-number-masked: it is unauthenticated input.
    webhook_id: Mapped[str | None] = mapped_column(String(256))

    @classmethod
    def seen_since(cls, since: dt.datetime):
        """Buckets with refusals at or after ``since`` (to the minute: the bucket ``since``
        falls in counts whole)."""
        return cls.minute >= minute_of(since)
