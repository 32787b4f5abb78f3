"""Cards. FINCI identifies a card by ``token_id``; we never hold more than a masked number.

Created by seeding and fixtures today; the card lifecycle (issue #6) refreshes them from FINCI's
get-cards API and from ``card_status`` webhooks. Decisioning reads one row per authorization
(by ``token_id``, unique), so everything it needs is on this row or one join away.
"""

from __future__ import annotations

import datetime as dt
import re
from enum import StrEnum

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, validates

from console.db import Base, utcnow
from console.finci import contract

ID = BigInteger().with_variant(Integer, "sqlite")

_MASKED = re.compile(contract.MASKED_CARD_NUMBER_PATTERN)


def _in(column: str, values) -> str:
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"


class Card(Base):
    __tablename__ = "card"
    __table_args__ = (
        CheckConstraint(_in("status", contract.TokenStatus), name="status_known"),
        CheckConstraint(f"stage IS NULL OR {_in('stage', contract.TokenStage)}",
                        name="stage_known"),
        CheckConstraint("length(currency) = 3", name="currency_iso"),
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    token_id: Mapped[str] = mapped_column(String(contract.TOKEN_ID_MAX_LENGTH), unique=True)
    # ``XXXX-XX**-****-XXXX`` as FINCI returns it: first six and last four digits at most.
    masked_number: Mapped[str | None] = mapped_column(String(19))
    status: Mapped[str] = mapped_column(String(16))
    stage: Mapped[str | None] = mapped_column(String(24))
    person_id: Mapped[str | None] = mapped_column(String(64), index=True)
    corporate_id: Mapped[str | None] = mapped_column(String(64), index=True)
    employee_id: Mapped[str | None] = mapped_column(String(64))
    product_id: Mapped[str | None] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(3))
    # The customer-funds account the card spends from; several cards may share one (corporate).
    # NULL: known to FINCI but not linked to funds yet, so it cannot be approved.
    account_id: Mapped[int | None] = mapped_column(ID, ForeignKey("ledger_account.id"),
                                                   index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # When the current status became true (FINCI's created_at of the card_status message, or the
    # time FINCI accepted our change): an older status report arriving late never overrides it.
    status_as_of: Mapped[dt.datetime | None]
    # Last time get-cards listed this card (console.cards.refresh).
    refreshed_at: Mapped[dt.datetime | None]

    @validates("masked_number")
    def _only_masked(self, _key, value: str | None) -> str | None:
        # The one place a card number could enter this table: anything but the masked form is
        # refused, so a full number can never be stored by mistake.
        if value is not None and not _MASKED.fullmatch(value):
            raise ValueError("masked_number must look like XXXX-XX**-****-XXXX")
        return value

    @validates("status")
    def _known_status(self, _key, value: str) -> str:
        return contract.TokenStatus(value).value

    @validates("currency")
    def _currency(self, _key, value: str) -> str:
        if not re.fullmatch(r"[A-Z]{3}", value or ""):
            raise ValueError("currency must be an ISO 4217 code")
        return value


class StatusSource(StrEnum):
    WEBHOOK = "webhook"    # a card_status message from FINCI
    OPERATOR = "operator"  # our change, accepted by FINCI's update-card-status
    REFRESH = "refresh"    # first seen in get-cards


class CardStatusChange(Base):
    """Every status (or stage) FINCI reported or accepted for a card, applied or not.

    A report older than the card's ``status_as_of`` is recorded with ``applied`` false: the
    history is complete, and the card's status is the latest report whatever the arrival order.
    """

    __tablename__ = "card_status_change"
    __table_args__ = (
        CheckConstraint(_in("source", StatusSource), name="source_known"),
        Index("ix_card_status_change_token_occurred", "token_id", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    card_id: Mapped[int | None] = mapped_column(ID, ForeignKey("card.id"), index=True)
    token_id: Mapped[str] = mapped_column(String(contract.TOKEN_ID_MAX_LENGTH))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    stage: Mapped[str | None] = mapped_column(String(24))
    source: Mapped[str] = mapped_column(String(10))
    # The card_status message (one change per message: a replay records nothing new).
    message_id: Mapped[int | None] = mapped_column(ID, ForeignKey("webhook_message.id"),
                                                   unique=True)
    # The operator action FINCI accepted.
    action_id: Mapped[int | None] = mapped_column(ID, ForeignKey("card_action.id"), unique=True)
    # When it became true at FINCI (message created_at, or when FINCI accepted our request).
    occurred_at: Mapped[dt.datetime]
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    applied: Mapped[bool] = mapped_column(Boolean)
    # False when FINCI reported a change the working model would not allow: flagged for review.
    modelled: Mapped[bool] = mapped_column(Boolean, default=True)


class ActionStatus:
    PENDING = "pending"      # committed, waiting for the sender (or for its next attempt)
    SENDING = "sending"      # claimed by a sender under a lease
    SENT = "sent"            # FINCI accepted it; the card's status was updated
    FAILED = "failed"        # gave up after the maximum attempts: visible, retry by hand
    REFUSED = "refused"      # the transition was no longer allowed when it was time to send
    ALL = (PENDING, SENDING, SENT, FAILED, REFUSED)
    OPEN = (PENDING, SENDING)


class CardAction(Base):
    """The outbox row of one operator status change (DESIGN.md convention 3).

    Written in the operator's request transaction, together with its audit row; the sender job
    calls FINCI only after that COMMIT, then records the result in its own transaction.
    """

    __tablename__ = "card_action"
    __table_args__ = (
        CheckConstraint(_in("status", ActionStatus.ALL), name="status_known"),
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        Index("ix_card_action_due", "status", "next_attempt_at"),
        # The kill switch page's last-hour volume (console.flows.blast_radius).
        Index("ix_card_action_requested_at", "requested_at"),
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    card_id: Mapped[int] = mapped_column(ID, ForeignKey("card.id"), index=True)
    token_id: Mapped[str] = mapped_column(String(contract.TOKEN_ID_MAX_LENGTH))
    # console.finci.card_status.OperatorAction
    action: Mapped[str] = mapped_column(String(20))
    from_status: Mapped[str] = mapped_column(String(16))
    target_status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(500))
    requested_by: Mapped[str] = mapped_column(String(200))
    requested_at: Mapped[dt.datetime]
    status: Mapped[str] = mapped_column(String(10), default=ActionStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime]
    lease_until: Mapped[dt.datetime | None]
    last_attempt_at: Mapped[dt.datetime | None]
    # Error kind, HTTP status and FINCI's error codes only (CardApiError carries nothing else).
    last_error: Mapped[str | None] = mapped_column(String(300))
    completed_at: Mapped[dt.datetime | None]
