"""Decision records and the versioned rule configuration.

``DecisionRecord`` is a business record, one per FINCI authorization (``authorization_id`` is
UNIQUE): the request as we saw it, our answer and why, every rule with its result, the latency of
each stage, whether a fallback answer was used, and, once the advice arrives, what FINCI actually
did and what that meant for the hold. A repeated request finds this row and gets the same answer.

``RuleConfigVersion`` rows are never changed: an edit in the console adds a version (audited), the
highest version is in force, and each decision names the version it applied.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from console.db import Base, utcnow
from console.ledger.models import ID


def _in(column: str, values) -> str:
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"


class Origin(StrEnum):
    REQUEST = "request"  # created when the authorization request was answered
    ADVICE = "advice"    # created by an advice with no request before it (FINCI decided)


class Reason(StrEnum):
    """Why we answered what we answered. Fixed codes: safe for logs, metrics and filters."""

    APPROVED = "approved"
    CARD_UNKNOWN = "card_unknown"
    CARD_NOT_ACTIVE = "card_not_active"
    NO_ACCOUNT = "no_account"
    CURRENCY_MISMATCH = "currency_mismatch"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    LIMIT_EXCEEDED = "limit_exceeded"
    MCC_BLOCKED = "mcc_blocked"
    COUNTRY_BLOCKED = "country_blocked"
    VELOCITY = "velocity"
    KILL_SWITCH = "kill_switch"            # decisioning switched off: the stand-in answer
    BUDGET_EXCEEDED = "budget_exceeded"    # safe default: out of time
    ERROR = "error"                        # safe default: something failed
    FINCI_MANAGED = "finci_managed"        # FINCI-managed program: acknowledgement only
    FINCI_DECIDED = "finci_decided"        # advice-only record: FINCI answered, we were not asked
    ADVICE_ALREADY_RECEIVED = "advice_already_received"  # request after its advice


class AdviceOutcome(StrEnum):
    """What FINCI's advice said compared with our answer."""

    APPROVED_AS_ANSWERED = "approved_as_answered"  # both approved: the hold stays
    DECLINED_AS_ANSWERED = "declined_as_answered"  # both declined
    TIMEOUT = "timeout"                  # we approved, too late: FINCI declined; hold released
    FINCI_DECLINED = "finci_declined"    # we approved in time, FINCI declined; hold released
    FINCI_APPROVED = "finci_approved"    # we declined, FINCI approved; hold placed from advice
    FINCI_DECIDED = "finci_decided"      # no decision of ours (no request, or FINCI-managed)


# Outcomes where FINCI did something other than what we answered.
DIVERGENT_OUTCOMES = (AdviceOutcome.TIMEOUT, AdviceOutcome.FINCI_DECLINED,
                      AdviceOutcome.FINCI_APPROVED)


class HoldAction(StrEnum):
    KEPT = "kept"
    RELEASED = "released"
    PLACED = "placed"        # FINCI approved and we had no hold: placed from the advice
    ADJUSTED = "adjusted"    # approved amount differs from the hold: the advice's amount wins
    NONE = "none"
    NO_ACCOUNT = "no_account"  # FINCI approved a card we cannot hold funds for: investigate


class DecisionRecord(Base):
    __tablename__ = "decision_record"
    __table_args__ = (
        CheckConstraint(_in("origin", Origin), name="origin_known"),
        CheckConstraint("answer IS NULL OR answer IN ('success', 'error')", name="answer_known"),
        CheckConstraint("(origin = 'request') = (answer IS NOT NULL)", name="request_answered"),
        CheckConstraint(f"advice_outcome IS NULL OR {_in('advice_outcome', AdviceOutcome)}",
                        name="advice_outcome_known"),
        # Velocity: recent requests per card.
        Index("ix_decision_record_card_received", "card_id", "received_at"),
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    # FINCI's authorization ``id`` (shared by the request and its advice): one record per
    # authorization, so a repeated request can never be decided, or hold funds, twice.
    authorization_id: Mapped[str] = mapped_column(String(64), unique=True)
    origin: Mapped[str] = mapped_column(String(10))
    # integrator | finci: the program's responsibility split when the record was made.
    mode: Mapped[str] = mapped_column(String(12))
    # --- the request ---
    token_id: Mapped[str] = mapped_column(String(64), index=True)
    card_id: Mapped[int | None] = mapped_column(ID, ForeignKey("card.id"))
    account_id: Mapped[int | None] = mapped_column(ID, ForeignKey("ledger_account.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    # Card numbers masked (merchant names are free text).
    merchant_name: Mapped[str | None] = mapped_column(String(200))
    mcc: Mapped[str | None] = mapped_column(String(4))
    merchant_country: Mapped[str | None] = mapped_column(String(2))
    # FINCI's ``created_at`` of the request (or of the advice for advice-only records).
    finci_created_at: Mapped[dt.datetime]
    # When decisioning started on it (our clock).
    received_at: Mapped[dt.datetime] = mapped_column(index=True)
    # --- our answer ---
    answer: Mapped[str | None] = mapped_column(String(7))
    reason: Mapped[str] = mapped_column(String(40))
    # Human-readable, from our own vocabulary (never request content).
    detail: Mapped[str] = mapped_column(String(300), default="")
    # True when the answer is the safe default (out of time, or something failed).
    default_used: Mapped[bool] = mapped_column(Boolean, default=False)
    # [{"rule": ..., "passed": true|false|null, "detail": ...}, ...]; null = not applicable.
    rule_trace: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # {"stage": milliseconds, ...} up to the moment this row was written.
    latency_ms: Mapped[dict[str, float]] = mapped_column(JSON, default=dict)
    total_ms: Mapped[float | None] = mapped_column(Float)
    rule_config_version: Mapped[int | None] = mapped_column(Integer)
    decided_at: Mapped[dt.datetime | None]
    # --- FINCI's advice (the source of truth for the outcome) ---
    advice_response_code: Mapped[str | None] = mapped_column(String(64))
    advice_amount: Mapped[int | None] = mapped_column(BigInteger)
    advice_received_at: Mapped[dt.datetime | None]
    # The stored advice message (console.ingress), for the timeline.
    advice_message_id: Mapped[int | None] = mapped_column(ID)
    advice_outcome: Mapped[str | None] = mapped_column(String(24), index=True)
    hold_action: Mapped[str | None] = mapped_column(String(12))

    @property
    def approved(self) -> bool:
        return self.answer == "success"

    @property
    def divergent(self) -> bool:
        return self.advice_outcome in DIVERGENT_OUTCOMES


class RuleConfigVersion(Base):
    __tablename__ = "decisioning_rule_config"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    # The validated configuration (console.decisioning.config.RuleConfig.as_document()).
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    # SHA-256 of the canonical document: the per-process cache key, so a version number that was
    # read inside a transaction later rolled back can never serve a different document.
    digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(String(500))
