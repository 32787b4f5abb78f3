"""``decide``: answer one authorization request within the budget. The hot path.

Called by the ingress (through ``console.ingress.decisioning_port``) inside its transaction,
after the message row is written and before COMMIT. Services only flush; the ingress commits
the message, our decision record and the hold together, or none of them.

Steps (each a few indexed reads; stage times are recorded):

``lookup``  the decision for this authorization id, if any: a repeat gets the first answer
``config``  kill switch (one primary-key read) and the rule configuration version in force
``card``    card joined to its account, the account row locked (balance is read and held
            atomically with respect to other authorizations on the same account)
``usage``   spend today / this month (card and account) and recent requests, one round trip,
            only when an enabled rule needs them
``rules``   the pure rule table
``hold``    on approval, the hold and the account's held total
``record``  the decision record (UNIQUE authorization id: the concurrency-safe idempotency key)

All of it runs in a SAVEPOINT under ``StatementDeadline``. Anything that fails, or a deadline
that passes (even after the hold was placed), rolls the SAVEPOINT back, so no hold survives an
answer that was not "approve", and the safe default is recorded instead, with why.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from console.cards.models import Card
from console.decisioning import rules
from console.decisioning.budget import (
    SYSTEM_CLOCK,
    Budget,
    BudgetExceeded,
    Clock,
    StageTimer,
    StatementDeadline,
    is_timeout,
)
from console.decisioning.config import RuleConfig, active_config
from console.decisioning.models import DecisionRecord, Origin, Reason
from console.decisioning.settings import AnswerStatus, DecisioningMode, DecisioningSettings
from console.finci.contract import ResponseCode
from console.finci.payload import WebhookMessage
from console.flows.services import Flow, is_enabled
from console.ledger import services as ledger
from console.ledger.models import HoldSource, LedgerAccount
from console.security.redaction import redact_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decision:
    authorization_id: str
    answer: AnswerStatus
    reason: Reason
    detail: str = ""
    default_used: bool = False
    # True when this request had been answered before (same message or same authorization id).
    repeated: bool = False
    record_id: int | None = None
    hold_id: int | None = None

    @property
    def approve(self) -> bool:
        return self.answer is AnswerStatus.SUCCESS


class _Answered(Exception):
    def __init__(self, decision: Decision):
        self.decision = decision


def decide(session: Session, message: WebhookMessage, settings: DecisioningSettings,
           clock: Clock = SYSTEM_CLOCK) -> Decision:
    """Approve (``success``) or decline (``error``) one authorization request, in time."""
    if not message.is_authorization_request:
        raise ValueError("decide() takes authorization requests (advice=false) only")
    # The caller's pending writes are its own: flush them before our SAVEPOINT, outside the
    # budget guard, so a rollback of ours can never take them along.
    session.flush()
    budget = Budget(settings.budget_s, clock)
    timer = StageTimer(clock)
    received_at = clock.now()
    connection = session.connection()
    with StatementDeadline(connection, budget.decide_by, clock) as guard:
        cause, detail = Reason.ERROR, "unexpected failure"
        try:
            with session.begin_nested():
                decision = _decide(session, message, settings, budget, timer, received_at)
                # The last word: an approval that is late is not given, and its hold and record
                # go with the SAVEPOINT (no orphan hold).
                timer.start("answer")
                budget.check("answer")
            return decision
        except _Answered as answered:
            return answered.decision
        except BudgetExceeded:
            cause, detail = Reason.BUDGET_EXCEEDED, f"out of time in stage {timer.current!r}"
        except IntegrityError:
            # A concurrent request for the same authorization recorded its decision first.
            guard.forget()
            guard.move_deadline(budget.fallback_deadline())
            first = _replay(session, message.id)
            if first is not None:
                return first
            detail = "conflicting concurrent write"
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise  # the database is gone: nothing can be stored, the ingress answers 503
            if is_timeout(exc) or budget.expired():
                cause = Reason.BUDGET_EXCEEDED
                detail = f"database too slow in stage {timer.current!r}"
            else:
                detail = f"database error {type(exc.orig).__name__} in stage {timer.current!r}"
        except Exception as exc:
            detail = f"{type(exc).__name__} in stage {timer.current!r}"
        guard.forget()
        guard.move_deadline(budget.fallback_deadline())
        return _fallback(session, message, settings, cause, detail, budget, timer, received_at)


def _decide(session: Session, message: WebhookMessage, settings: DecisioningSettings,
            budget: Budget, timer: StageTimer, received_at: dt.datetime) -> Decision:
    timer.start("lookup")
    first = _replay(session, message.id)
    if first is not None:
        raise _Answered(first)  # nothing written: leave the SAVEPOINT through its rollback

    if settings.mode is DecisioningMode.FINCI:
        return _write(session, message, settings, budget, timer, received_at,
                      answer=settings.acknowledgement, reason=Reason.FINCI_MANAGED,
                      detail="FINCI-managed program: acknowledgement, not a decision",
                      trace=[], config=None, card=None)

    timer.start("config")
    enabled = is_enabled(session, Flow.DECISIONING)
    config = active_config(session)
    budget.check("config")

    timer.start("card")
    card = _card_facts(session, message.token_id)
    budget.check("card")

    if not enabled:
        answer = settings.stand_in
        trace = [{"rule": "kill_switch", "passed": False,
                  "detail": f"decisioning switched off: stand-in answer {answer.value}"}]
        return _write(session, message, settings, budget, timer, received_at, answer=answer,
                      reason=Reason.KILL_SWITCH, detail="decisioning switched off",
                      trace=trace, config=config, card=card, hold_source=HoldSource.STAND_IN)

    timer.start("usage")
    usage = _usage(session, card, message, config, received_at)
    budget.check("usage")

    timer.start("rules")
    facts = rules.Facts(amount=message.amount or 0, currency=message.currency or "",
                        mcc=merchant_field(message, "mcc"),
                        country=merchant_field(message, "country"), card=card, usage=usage)
    evaluation = rules.evaluate(facts, config)
    failed = evaluation.failed
    budget.check("rules")
    return _write(session, message, settings, budget, timer, received_at,
                  answer=AnswerStatus.SUCCESS if failed is None else AnswerStatus.ERROR,
                  reason=evaluation.reason,
                  detail=f"{failed.name}: {failed.detail}" if failed else "all rules passed",
                  trace=evaluation.trace(), config=config, card=card)


def _write(session: Session, message: WebhookMessage, settings: DecisioningSettings,
           budget: Budget, timer: StageTimer, received_at: dt.datetime, *, answer: AnswerStatus,
           reason: Reason, detail: str, trace: list[dict], config: RuleConfig | None,
           card: rules.CardFacts | None, hold_source: HoldSource = HoldSource.DECISION
           ) -> Decision:
    hold_id = None
    if answer.approves and settings.mode is DecisioningMode.INTEGRATOR:
        timer.start("hold")
        hold_id = _place_hold(session, message, settings, card, hold_source, received_at)
        if hold_id is None:
            trace = [*trace, {"rule": "hold", "passed": None,
                              "detail": "approved without a hold: no account in this currency"}]
    timer.start("record")
    record = _record(message, settings, received_at, answer=answer, reason=reason,
                     detail=detail, trace=trace, config=config, card=card, timer=timer,
                     budget=budget)
    session.add(record)
    session.flush()
    return Decision(message.id, answer, reason, detail, record_id=record.id, hold_id=hold_id)


def _place_hold(session: Session, message: WebhookMessage, settings: DecisioningSettings,
                card: rules.CardFacts | None, source: HoldSource, now: dt.datetime
                ) -> int | None:
    if card is None or card.account_id is None or card.account_currency != message.currency:
        return None
    return ledger.place_hold(
        session, authorization_id=message.id, account_id=card.account_id, card_id=card.card_id,
        amount=message.amount or 0, currency=card.account_currency, source=source,
        expires_at=now + dt.timedelta(hours=settings.hold_ttl_hours), now=now)


def _record(message: WebhookMessage, settings: DecisioningSettings, received_at: dt.datetime,
            *, answer: AnswerStatus, reason: Reason, detail: str, trace: list[dict],
            config: RuleConfig | None, card: rules.CardFacts | None, timer: StageTimer,
            budget: Budget, default_used: bool = False) -> DecisionRecord:
    stages = dict(timer.stages)
    return DecisionRecord(
        authorization_id=message.id, origin=Origin.REQUEST.value, mode=settings.mode.value,
        token_id=message.token_id or "", card_id=card.card_id if card else None,
        account_id=card.account_id if card else None, amount=message.amount or 0,
        currency=message.currency or "", merchant_name=merchant_name_of(message),
        mcc=merchant_field(message, "mcc"), merchant_country=merchant_field(message, "country"),
        finci_created_at=message.created_at, received_at=received_at,
        answer=answer.value, reason=reason.value, detail=detail[:300],
        default_used=default_used, rule_trace=trace, latency_ms=stages,
        total_ms=round(budget.elapsed_ms(), 3),
        rule_config_version=config.version if config else None,
        decided_at=received_at + dt.timedelta(milliseconds=budget.elapsed_ms()),
    )


def _fallback(session: Session, message: WebhookMessage, settings: DecisioningSettings,
              cause: Reason, detail: str, budget: Budget, timer: StageTimer,
              received_at: dt.datetime) -> Decision:
    """The safe default, recorded with why (best effort: the answer never waits on it)."""
    answer = settings.safe_default
    stage = timer.current
    timer.start("fallback")
    log.warning("authorization %s answered with the safe default: %s", message.id,
                cause.value, extra={"reason": cause.value, "stage": stage,
                                    "elapsed_ms": round(budget.elapsed_ms(), 1)})
    trace = [{"rule": "budget" if cause is Reason.BUDGET_EXCEEDED else "failure",
              "passed": False, "detail": detail[:300]}]
    try:
        with session.begin_nested():
            record = _record(message, settings, received_at, answer=answer, reason=cause,
                             detail=detail, trace=trace, config=None, card=None, timer=timer,
                             budget=budget, default_used=True)
            session.add(record)
            session.flush()
        return Decision(message.id, answer, cause, detail, default_used=True,
                        record_id=record.id)
    except IntegrityError:
        first = _replay(session, message.id)
        if first is not None:
            return first
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise
        log.error("could not record the safe default for %s: %s", message.id,
                  type(exc.orig).__name__)
    except BudgetExceeded:
        log.error("no time left to record the safe default for %s", message.id)
    return Decision(message.id, answer, cause, detail, default_used=True)


# --- reads ------------------------------------------------------------------------------------

def _replay(session: Session, authorization_id: str) -> Decision | None:
    """The first answer for this authorization, if it was answered (or FINCI already decided)."""
    row = session.execute(
        select(DecisionRecord.id, DecisionRecord.origin, DecisionRecord.answer,
               DecisionRecord.reason, DecisionRecord.detail, DecisionRecord.default_used,
               DecisionRecord.advice_response_code)
        .where(DecisionRecord.authorization_id == authorization_id)).one_or_none()
    if row is None:
        return None
    if row.origin == Origin.ADVICE.value:
        # FINCI decided before our answer could matter; say what it did, change nothing.
        approved = row.advice_response_code == ResponseCode.APPROVED.value
        return Decision(authorization_id,
                        AnswerStatus.SUCCESS if approved else AnswerStatus.ERROR,
                        Reason.ADVICE_ALREADY_RECEIVED, "the advice arrived first",
                        repeated=True, record_id=row.id)
    return Decision(authorization_id, AnswerStatus(row.answer), Reason(row.reason), row.detail,
                    default_used=row.default_used, repeated=True, record_id=row.id)


def _card_facts(session: Session, token_id: str | None) -> rules.CardFacts | None:
    if not token_id:
        return None
    # Locks the account row: two authorizations on one account cannot both spend the same
    # available balance. (SQLite serialises writers instead; FOR UPDATE is not rendered there.)
    row = session.execute(
        select(Card.id, Card.status, Card.currency, Card.account_id, LedgerAccount.currency,
               LedgerAccount.posted_balance, LedgerAccount.held_amount)
        .join(LedgerAccount, LedgerAccount.id == Card.account_id)
        .where(Card.token_id == token_id)
        .with_for_update(of=LedgerAccount)).one_or_none()
    if row is not None:
        return rules.CardFacts(card_id=row[0], token_id=token_id, status=row[1],
                               currency=row[2], account_id=row[3], account_currency=row[4],
                               posted=row[5], held=row[6])
    card = session.execute(select(Card.id, Card.status, Card.currency)
                           .where(Card.token_id == token_id)).one_or_none()
    if card is None:
        return None
    return rules.CardFacts(card_id=card.id, token_id=token_id, status=card.status,
                           currency=card.currency, account_id=None, account_currency=None)


def _usage(session: Session, card: rules.CardFacts | None, message: WebhookMessage,
           config: RuleConfig, now: dt.datetime) -> rules.Usage | None:
    if card is None:
        return None
    columns = {}
    if card.account_id is not None and config.needs_spend(message.currency or ""):
        day, month = config.windows(now)
        columns["card_day"] = ledger.spend_since(day, card_id=card.card_id)
        columns["card_month"] = ledger.spend_since(month, card_id=card.card_id)
        columns["account_day"] = ledger.spend_since(day, account_id=card.account_id)
        columns["account_month"] = ledger.spend_since(month, account_id=card.account_id)
    if config.velocity_enabled:
        since = now - dt.timedelta(seconds=config.velocity_window_s)
        columns["card_recent_requests"] = (
            select(func.count()).select_from(DecisionRecord)
            .where(DecisionRecord.card_id == card.card_id,
                   DecisionRecord.origin == Origin.REQUEST.value,
                   DecisionRecord.received_at >= since)
            .scalar_subquery())
    if not columns:
        return None
    row = session.execute(select(*(c.label(name) for name, c in columns.items()))).one()
    return rules.Usage(**{name: int(row._mapping[name] or 0) for name in columns})


def merchant_field(message: WebhookMessage, key: str) -> str | None:
    value = (message.merchant or {}).get(key)
    return value if isinstance(value, str) else None


def merchant_name_of(message: WebhookMessage) -> str | None:
    name = merchant_field(message, "name")
    return redact_text(name)[:200] if name else None
