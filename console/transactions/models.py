"""Transaction records. Money is integer minor units with its ISO 4217 currency.

A ``CardTransaction`` is keyed by ``link_key``: ``auth:<authorization id>`` for everything that
belongs to an authorization (request, advice, and every reversal, presentment or refund that names
it), or ``<type>:<own id>`` for a message that names no authorization (a presentment-first
transaction, an unlinked refund). Whichever message arrives first creates the row; the UNIQUE key
makes every later one, in any order, land on the same row.

Its state and amounts are *derived* from the linked messages (``services.derive``), never
accumulated step by step, so the final state cannot depend on arrival order or on duplicates.

``TransactionPosting`` is one row per presentment or refund message (UNIQUE ``message_id``), and
the ledger journal it creates has the UNIQUE reference ``presentment:<id>`` / ``refund:<id>``:
a replayed message can never post twice.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from console.db import Base, utcnow
from console.ledger.models import ID


def _in(column: str, values) -> str:
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"


class TxnState(StrEnum):
    REQUESTED = "requested"  # a request, outcome not known yet (no decision of ours, no advice)
    APPROVED = "approved"
    DECLINED = "declined"
    REVERSED = "reversed"    # reversed in full before clearing
    EXPIRED = "expired"      # approved, never cleared: the hold was released after the window
    CLEARED = "cleared"      # presented, not (yet) all posted: parked, failed, or ledger not kept
    POSTED = "posted"        # every presentment posted to our ledger
    REFUNDED = "refunded"    # a refund credited (in part or in full)


class Role(StrEnum):
    REQUEST = "request"
    ADVICE = "advice"
    REVERSAL = "reversal"
    PRESENTMENT = "presentment"
    REFUND = "refund"


class PostingStatus(StrEnum):
    PARKED = "parked"      # a presentment waiting for its authorization's outcome (the advice)
    POSTED = "posted"
    FAILED = "failed"      # see ``FailureReason``; retried after repair
    SKIPPED = "skipped"    # nothing to post: the ledger is kept by FINCI, or a zero amount


class FailureReason(StrEnum):
    UNKNOWN_CARD = "unknown_card"            # no card with this token_id (refresh the cards)
    UNKNOWN_ACCOUNT = "unknown_account"      # the card is not linked to a ledger account
    CURRENCY_MISMATCH = "currency_mismatch"  # message currency is not the account's
    OVER_HOLD = "over_hold"                  # above the authorization beyond the tolerance
    ACCOUNT_CLOSED = "account_closed"


class CardTransaction(Base):
    __tablename__ = "card_transaction"
    __table_args__ = (
        CheckConstraint(_in("state", TxnState), name="state_known"),
        CheckConstraint("authorized_amount >= 0 AND reversed_amount >= 0 AND cleared_amount >= 0"
                        " AND refunded_amount >= 0", name="amounts_not_negative"),
        # Searches: "amount on a date", and the newest first.
        Index("ix_card_transaction_amount_first", "authorized_amount", "first_event_at"),
        Index("ix_card_transaction_cleared_first", "cleared_amount", "first_event_at"),
        # A card's transactions, and those changed lately: every posting updates its
        # transaction, so spend limits find recent postings through it (transactions.spend).
        Index("ix_card_transaction_card_updated", "card_id", "updated_at"),
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    # ``auth:<authorization id>`` or ``<type>:<own id>`` (see the module docstring).
    link_key: Mapped[str] = mapped_column(String(220), unique=True)
    authorization_id: Mapped[str | None] = mapped_column(String(200), index=True)
    token_id: Mapped[str | None] = mapped_column(String(64), index=True)
    card_id: Mapped[int | None] = mapped_column(ID, ForeignKey("card.id"))
    currency: Mapped[str | None] = mapped_column(String(3))
    # Card numbers masked (merchant names are free text from FINCI).
    merchant_name: Mapped[str | None] = mapped_column(String(200))
    mcc: Mapped[str | None] = mapped_column(String(4))
    state: Mapped[str] = mapped_column(String(12), index=True)
    has_request: Mapped[bool] = mapped_column(Boolean, default=False)
    has_advice: Mapped[bool] = mapped_column(Boolean, default=False)
    # Messages name an authorization we have not seen yet (an orphan): presentments stay parked.
    awaiting_authorization: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    # The advice's response code, when it arrived (FINCI's outcome, the source of truth).
    response_code: Mapped[str | None] = mapped_column(String(64))
    authorized_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    reversed_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    cleared_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    # Presentments and refunds whose posting failed and waits for repair.
    failed_postings: Mapped[int] = mapped_column(Integer, default=0, index=True)
    # FINCI's created_at of the earliest and latest linked message.
    first_event_at: Mapped[dt.datetime] = mapped_column(index=True)
    last_event_at: Mapped[dt.datetime]
    # FINCI's created_at of the authorization (request or advice): the start of the hold window.
    authorized_at: Mapped[dt.datetime | None]
    # Set by the expiry job: approved, no presentment within the window.
    expired_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class TransactionMessage(Base):
    """One stored message linked to its transaction (duplicates are one stored message)."""

    __tablename__ = "transaction_message"
    __table_args__ = (CheckConstraint(_in("role", Role), name="role_known"),)

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    transaction_id: Mapped[int] = mapped_column(ID, ForeignKey("card_transaction.id"),
                                                index=True)
    message_id: Mapped[int] = mapped_column(ID, ForeignKey("webhook_message.id"), unique=True)
    role: Mapped[str] = mapped_column(String(12))
    # FINCI's ``id`` of the message (for authorizations, the authorization id).
    finci_id: Mapped[str] = mapped_column(String(64), index=True)
    amount: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    # Advices only.
    response_code: Mapped[str | None] = mapped_column(String(64))
    finci_created_at: Mapped[dt.datetime]
    linked_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class TransactionPosting(Base):
    """The ledger side of one presentment or refund: posted, parked, or failed with a reason."""

    __tablename__ = "transaction_posting"
    __table_args__ = (
        CheckConstraint(_in("status", PostingStatus), name="status_known"),
        CheckConstraint("kind IN ('presentment', 'refund')", name="kind_known"),
        CheckConstraint(f"reason IS NULL OR {_in('reason', FailureReason)}", name="reason_known"),
        CheckConstraint("(status = 'failed') = (reason IS NOT NULL)", name="failed_has_reason"),
        CheckConstraint("(status = 'posted') = (journal_id IS NOT NULL)",
                        name="posted_has_journal"),
        CheckConstraint("amount >= 0", name="amount_not_negative"),
        Index("ix_transaction_posting_status_reason", "status", "reason"),
        # The kill switch page's last-hour volume (console.flows.blast_radius).
        Index("ix_transaction_posting_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    transaction_id: Mapped[int] = mapped_column(ID, ForeignKey("card_transaction.id"),
                                                index=True)
    # One posting per message: the first guard against posting a replay twice (the journal's
    # UNIQUE reference is the second).
    message_id: Mapped[int] = mapped_column(ID, ForeignKey("webhook_message.id"), unique=True)
    kind: Mapped[str] = mapped_column(String(12))
    finci_id: Mapped[str] = mapped_column(String(64))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str | None] = mapped_column(String(20))
    # Human-readable, from our own vocabulary (amounts, currencies, ids; never card data).
    detail: Mapped[str] = mapped_column(String(300), default="")
    journal_id: Mapped[int | None] = mapped_column(ID, ForeignKey("ledger_journal.id"))
    # Posting attempts (first try, automatic re-evaluations and operator retries).
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # An operator accepted an amount over the hold (who), for the retry that follows.
    accepted_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    posted_at: Mapped[dt.datetime | None]
