"""Advices: FINCI's ``advice=true`` authorization message, the source of truth for the outcome.

Compared with our answer (if we gave one), the advice decides what happens to the hold:

==================  ============  ================================  =====================
our answer          FINCI said    outcome                           hold
==================  ============  ================================  =====================
success             Approved      approved_as_answered              kept (amount adjusted
                                                                    to the advice's)
success             other code    timeout (our answer was late) or  released
                                  finci_declined
error               Approved      finci_approved                    placed from the advice
error               other code    declined_as_answered              none
none / ack only     Approved      finci_decided                     placed from the advice
none / ack only     other code    finci_decided                     none
==================  ============  ================================  =====================

"ack only" is a FINCI-managed program: the request was acknowledged, not decided, so the advice
is handled exactly like one with no request before it. An advice with no request creates the
authorization's record (``origin=advice``); a request arriving after it gets FINCI's outcome back
and changes nothing.

Runs in the pipeline worker's transaction (one per message); applying the same advice again is a
no-op (``advice_received_at`` is already set), so replays create no new effects.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from console.cards.models import Card
from console.decisioning.budget import SYSTEM_CLOCK, Clock
from console.decisioning.models import (
    AdviceOutcome,
    DecisionRecord,
    HoldAction,
    Origin,
    Reason,
)
from console.decisioning.services import merchant_field, merchant_name_of
from console.decisioning.settings import DecisioningMode, DecisioningSettings
from console.finci import contract
from console.finci.payload import WebhookMessage
from console.ledger import services as ledger
from console.ledger.models import Hold, HoldSource, HoldStatus, LedgerAccount, ReleaseReason

DEADLINE = dt.timedelta(seconds=contract.AUTHORIZATION_ANSWER_DEADLINE_SECONDS)


@dataclass(frozen=True)
class AdviceResult:
    authorization_id: str
    outcome: AdviceOutcome
    hold_action: HoldAction
    record_id: int
    already_applied: bool = False


def apply_advice(session: Session, message: WebhookMessage, settings: DecisioningSettings,
                 *, message_id: int | None = None, clock: Clock = SYSTEM_CLOCK) -> AdviceResult:
    if not message.is_advice:
        raise ValueError("apply_advice() takes authorization advices (advice=true) only")
    now = clock.now()
    # The account lock first, as decide() takes it: the two can never wait on each other in
    # opposite orders, and an advice racing its own request sees the request's committed record.
    card = _card(session, message.token_id)
    record = session.scalar(select(DecisionRecord)
                            .where(DecisionRecord.authorization_id == message.id)
                            .with_for_update())
    if record is not None and record.advice_received_at is not None:
        return AdviceResult(message.id, AdviceOutcome(record.advice_outcome),
                            HoldAction(record.hold_action), record.id, already_applied=True)
    if record is None:
        record = _advice_only_record(message, settings, card, now)
        session.add(record)

    approved = message.response_code == contract.ResponseCode.APPROVED.value
    outcome = _outcome(record, approved)
    hold_action = (_on_approved(session, message, settings, card, now) if approved
                   else _on_declined(session, message, now))

    record.advice_response_code = (message.response_code or "")[:64]
    record.advice_amount = message.amount
    record.advice_received_at = now
    record.advice_message_id = message_id
    record.advice_outcome = outcome.value
    record.hold_action = hold_action.value
    session.flush()
    return AdviceResult(message.id, outcome, hold_action, record.id)


def _outcome(record: DecisionRecord, approved: bool) -> AdviceOutcome:
    decided_by_us = (record.origin == Origin.REQUEST.value
                     and record.mode == DecisioningMode.INTEGRATOR.value
                     and record.reason != Reason.FINCI_MANAGED.value)
    if not decided_by_us:
        return AdviceOutcome.FINCI_DECIDED
    we_approved = record.answer == "success"
    if approved:
        return AdviceOutcome.APPROVED_AS_ANSWERED if we_approved else AdviceOutcome.FINCI_APPROVED
    if not we_approved:
        return AdviceOutcome.DECLINED_AS_ANSWERED
    return AdviceOutcome.TIMEOUT if _late(record) else AdviceOutcome.FINCI_DECLINED


def _late(record: DecisionRecord) -> bool:
    """Our approval most likely reached FINCI after its 3 s: by FINCI's clock or by ours."""
    if record.total_ms is not None and record.total_ms >= DEADLINE.total_seconds() * 1000:
        return True
    return (record.decided_at is not None
            and record.decided_at - record.finci_created_at >= DEADLINE)


def _on_approved(session: Session, message: WebhookMessage, settings: DecisioningSettings,
                 card: Card | None, now: dt.datetime) -> HoldAction:
    hold = session.execute(select(Hold.status, Hold.amount)
                           .where(Hold.authorization_id == message.id)).one_or_none()
    if hold is not None:
        if hold.status != HoldStatus.OPEN.value:
            return HoldAction.NONE  # already cleared or released: nothing left to reserve
        if message.amount is not None and message.amount != hold.amount:
            ledger.adjust_hold(session, message.id, message.amount, now)
            return HoldAction.ADJUSTED
        return HoldAction.KEPT
    account_currency = None
    if card is not None and card.account_id is not None:
        account_currency = session.scalar(select(LedgerAccount.currency)
                                          .where(LedgerAccount.id == card.account_id))
    if card is None or account_currency is None or account_currency != message.currency:
        return HoldAction.NO_ACCOUNT
    # FINCI approved: the money moves whatever our rules said, so our ledger must show it, even
    # if this takes the account below zero.
    ledger.place_hold(session, authorization_id=message.id, account_id=card.account_id,
                      card_id=card.id, amount=message.amount or 0, currency=account_currency,
                      source=HoldSource.ADVICE,
                      expires_at=now + dt.timedelta(hours=settings.hold_ttl_hours), now=now)
    return HoldAction.PLACED


def _on_declined(session: Session, message: WebhookMessage, now: dt.datetime) -> HoldAction:
    released = ledger.release_hold(session, message.id, ReleaseReason.ADVICE_DECLINED, now)
    return HoldAction.RELEASED if released is not None else HoldAction.NONE


def _card(session: Session, token_id: str | None) -> Card | None:
    if not token_id:
        return None
    card = session.scalar(select(Card).where(Card.token_id == token_id))
    if card is not None and card.account_id is not None:
        ledger.lock_account(session, card.account_id)
    return card


def _advice_only_record(message: WebhookMessage, settings: DecisioningSettings,
                        card: Card | None, now: dt.datetime) -> DecisionRecord:
    return DecisionRecord(
        authorization_id=message.id, origin=Origin.ADVICE.value, mode=settings.mode.value,
        token_id=message.token_id or "", card_id=card.id if card else None,
        account_id=card.account_id if card else None, amount=message.amount or 0,
        currency=message.currency or "", merchant_name=merchant_name_of(message),
        mcc=merchant_field(message, "mcc"), merchant_country=merchant_field(message, "country"),
        finci_created_at=message.created_at, received_at=now, answer=None,
        reason=Reason.FINCI_DECIDED.value, detail="advice with no request before it",
        default_used=False, rule_trace=[], latency_ms={})
