"""Ledger tables. Money is always an integer number of minor units with its ISO 4217 currency.

Double entry: every ``LedgerJournal`` holds entries that sum to zero per currency (checked by
``services.post_journal`` and ``services.verify_balances``). Accounts carry running totals
(``posted_balance``, ``held_amount``) that services update under the account's row lock in the
same transaction as the entry or hold, so the authorization hot path reads one row instead of
summing history; ``verify_balances`` recomputes them from entries and holds.

Designed for the transaction lifecycle (issue #6): presentments convert holds into journals
(``Hold.converted_journal_id``), refunds and adjustments are further journal kinds, and every
journal's ``reference`` is UNIQUE so a replayed message can never post twice.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from console.db import Base, utcnow

ID = BigInteger().with_variant(Integer, "sqlite")


def _in(column: str, values) -> str:
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"


class AccountKind(StrEnum):
    CUSTOMER = "customer"      # a cardholder's (or corporate's) funds; cards spend from it
    FUNDING = "funding"        # where loads come from (the program's funding source)
    SETTLEMENT = "settlement"  # owed to FINCI / the scheme for cleared transactions


class HoldStatus(StrEnum):
    OPEN = "open"            # reserves funds: counts against available balance and limits
    RELEASED = "released"    # declined by FINCI, reversed, expired: the funds are free again
    CONVERTED = "converted"  # cleared: a posted journal replaced the hold (issue #6)


class HoldSource(StrEnum):
    DECISION = "decision"  # our approval
    STAND_IN = "stand_in"  # approved by the stand-in answer while rules were switched off
    ADVICE = "advice"      # FINCI approved without (or against) our approval: the advice rules


class ReleaseReason(StrEnum):
    ADVICE_DECLINED = "advice_declined"  # we approved; FINCI declined (timeout or its decision)
    EXPIRED = "expired"                  # no clearing within the hold's lifetime
    REVERSAL = "reversal"                # reserved for issue #6
    OPERATOR = "operator"                # reserved: manual release with an audit row


class LedgerAccount(Base):
    __tablename__ = "ledger_account"
    __table_args__ = (
        CheckConstraint(_in("kind", AccountKind), name="kind_known"),
        CheckConstraint("length(currency) = 3", name="currency_iso"),
        CheckConstraint("held_amount >= 0", name="held_not_negative"),
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(200))
    # The integrator's own id for the owner (person, corporate), when there is one.
    external_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    currency: Mapped[str] = mapped_column(String(3))
    # Sum of this account's entries (customer funds: positive = money the customer has).
    posted_balance: Mapped[int] = mapped_column(BigInteger, default=0)
    # Sum of this account's open holds.
    held_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # Closed accounts take no new postings (issue #6: a posting failure until reopened).
    closed_at: Mapped[dt.datetime | None]

    @property
    def available_balance(self) -> int:
        return self.posted_balance - self.held_amount


class LedgerJournal(Base):
    """One balanced posting: a load, a cleared purchase, a refund, an adjustment."""

    __tablename__ = "ledger_journal"

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    # e.g. funding, presentment, refund, adjustment (open set; issue #6 adds kinds).
    kind: Mapped[str] = mapped_column(String(20), index=True)
    # Business identity, e.g. ``presentment:<finci id>``: a second posting of it cannot commit.
    reference: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(String(200), default="")
    posted_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    posted_by: Mapped[str] = mapped_column(String(200))


class LedgerEntry(Base):
    __tablename__ = "ledger_entry"
    __table_args__ = (
        CheckConstraint("amount <> 0", name="amount_not_zero"),
        Index("ix_ledger_entry_account_posted", "account_id", "id"),
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    journal_id: Mapped[int] = mapped_column(ID, ForeignKey("ledger_journal.id"), index=True)
    account_id: Mapped[int] = mapped_column(ID, ForeignKey("ledger_account.id"))
    # Signed minor units; the entries of one journal sum to zero per currency.
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))


class Hold(Base):
    """Funds reserved by an approved authorization until it clears, is declined or expires."""

    __tablename__ = "ledger_hold"
    __table_args__ = (
        CheckConstraint(_in("status", HoldStatus), name="status_known"),
        CheckConstraint(_in("source", HoldSource), name="source_known"),
        CheckConstraint("amount >= 0", name="amount_not_negative"),
        CheckConstraint(
            "(status = 'released') = (released_at IS NOT NULL AND release_reason IS NOT NULL)",
            name="released_has_reason"),
        # Spend windows (daily, monthly limits) per card and per account.
        Index("ix_ledger_hold_card_placed", "card_id", "placed_at"),
        Index("ix_ledger_hold_account_placed", "account_id", "placed_at"),
        # The expiry job: open holds by expiry time.
        Index("ix_ledger_hold_status_expires", "status", "expires_at"),
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    # FINCI's authorization ``id``: one hold per authorization, whoever tries to place a second.
    authorization_id: Mapped[str] = mapped_column(String(64), unique=True)
    account_id: Mapped[int] = mapped_column(ID, ForeignKey("ledger_account.id"))
    card_id: Mapped[int] = mapped_column(ID, ForeignKey("card.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(10), default=HoldStatus.OPEN.value)
    source: Mapped[str] = mapped_column(String(10))
    placed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    released_at: Mapped[dt.datetime | None]
    release_reason: Mapped[str | None] = mapped_column(String(20))
    converted_at: Mapped[dt.datetime | None]
    # The journal that replaced this hold at clearing (issue #6).
    converted_journal_id: Mapped[int | None] = mapped_column(ID, ForeignKey("ledger_journal.id"))
