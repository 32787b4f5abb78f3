"""``decide``: answer one authorization request within the budget. The hot path.

Called by the ingress (through ``console.ingress.decisioning_port``) inside its transaction,
after the message row is written and before COMMIT. Services only flush; the ingress commits
the message, our decision record and the hold together, or none of them.

Steps (each a few indexed reads; stage times are recorded):

``lookup``  one round trip: an earlier decision for this authorization id (a repeat gets the
            first answer), the kill switch, and the rule configuration version in force
``config``  that version, parsed (cached per process by version and content digest)
``card``    card joined to its account, the account row locked (balance is read and held
            atomically with respect to other authorizations on the same account)
``usage``   spend today / this month (card and account) and recent requests, one round trip,
            only when an enabled rule needs them
``rules``   the pure rule table
``hold``    on approval, the hold and the account's held total
``record``  the decision record (UNIQUE authorization id: the concurrency-safe idempotency key)

The hot path is prebuilt Core statements on the session's connection: compiled once per
process, no ORM unit of work. All of it runs in a SAVEPOINT under ``StatementDeadline``.
Anything that fails, or a deadline that passes (even after the hold was placed), rolls the
SAVEPOINT back, so no hold survives an answer that was not "approve", and the safe default is
recorded instead, with why.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy import bindparam, func, insert, select
from sqlalchemy.engine import Connection
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
from console.decisioning.config import RuleConfig, config_for, head_version_query
from console.decisioning.models import DecisionRecord, Origin, Reason
from console.decisioning.settings import AnswerStatus, DecisioningMode, DecisioningSettings
from console.finci.contract import ResponseCode
from console.finci.payload import WebhookMessage
from console.flows.models import FlowSwitch
from console.flows.services import Flow
from console.ledger import services as ledger
from console.ledger.models import HoldSource, LedgerAccount
from console.security.redaction import redact_text
from console.transactions.spend import unheld_spend_since

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
           clock: Clock = SYSTEM_CLOCK, *, arrived: float | None = None) -> Decision:
    """Approve (``success``) or decline (``error``) one authorization request, in time.

    ``arrived``: when the request reached us (``clock.monotonic()``), if earlier than now. The
    budget runs from then, not from this call: time the ingress spent (a slow pool checkout, a
    locked row) is time FINCI's 3 s window has lost too. It shows as stage ``ingress``.
    """
    if not message.is_authorization_request:
        raise ValueError("decide() takes authorization requests (advice=false) only")
    # The caller's pending writes are its own: flush them before our SAVEPOINT, outside the
    # budget guard, so a rollback of ours can never take them along. From here on the hot path
    # is Core statements on the session's connection (prebuilt, so no per-call compilation).
    session.flush()
    budget = Budget(settings.budget_s, clock, started=arrived)
    timer = StageTimer(clock, first=None if arrived is None else "ingress", started=arrived)
    received_at = clock.now() - dt.timedelta(seconds=clock.monotonic() - budget.started)
    connection = session.connection()
    with StatementDeadline(connection, budget.decide_by, clock) as guard:
        guard.open_savepoint()
        cause, detail = Reason.ERROR, "unexpected failure"
        try:
            decision = _decide(connection, message, settings, budget, timer, received_at)
            # The last word: an approval that is late is not given, and its hold and record
            # go with the SAVEPOINT (no orphan hold).
            timer.start("answer")
            budget.check("answer")
            guard.release_savepoint()
            return decision
        except _Answered as answered:
            guard.release_savepoint()  # nothing was written
            return answered.decision
        except BudgetExceeded:
            cause, detail = Reason.BUDGET_EXCEEDED, f"out of time in stage {timer.current!r}"
        except IntegrityError:
            # A concurrent request for the same authorization recorded its decision first.
            guard.rollback_savepoint()
            guard.move_deadline(budget.fallback_deadline())
            first = _replay(connection, message.id)
            if first is not None:
                guard.release_savepoint()
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
        guard.rollback_savepoint()
        guard.move_deadline(budget.fallback_deadline())
        return _fallback(connection, guard, message, settings, cause, detail, budget, timer,
                         received_at)


def _decide(connection: Connection, message: WebhookMessage, settings: DecisioningSettings,
            budget: Budget, timer: StageTimer, received_at: dt.datetime) -> Decision:
    timer.start("lookup")
    # One round trip for what every decision needs first: an earlier decision for this
    # authorization, the kill switch, and the rule configuration version in force.
    head = connection.execute(_FIRST_READS, {"authorization_id": message.id}).one()
    if head.existing is not None:
        first = _replay(connection, message.id)
        if first is not None:
            raise _Answered(first)  # nothing written: leave the SAVEPOINT through its rollback

    if settings.mode is DecisioningMode.FINCI:
        return _write(connection, message, settings, budget, timer, received_at,
                      answer=settings.acknowledgement, reason=Reason.FINCI_MANAGED,
                      detail="FINCI-managed program: acknowledgement, not a decision",
                      trace=[], config=None, card=None)

    timer.start("config")
    # No switch row means the flow's default, enabled (console.flows.services.is_enabled).
    enabled = head.enabled is None or bool(head.enabled)
    config = config_for(connection, head.version, head.digest)
    budget.check("config")

    if not enabled:
        # Switched off, often in an incident: touch as little as possible. Only an approving
        # stand-in needs the card (its hold keeps our ledger true to what FINCI will do).
        # No rule is evaluated. A capped stand-in approval also needs the card's account to be
        # in the request's currency, so that its hold is placed (else it declines).
        answer = settings.stand_in_answer(message.amount, message.currency)
        card = None
        detail = "decisioning switched off"
        if settings.stand_in_approve_up_to is not None:
            detail += (f"; stand-in approves up to {settings.stand_in_approve_up_to} "
                       f"{settings.stand_in_currency}")
        if answer.approves:
            timer.start("card")
            card = _card_facts(connection, message.token_id)
            if settings.stand_in_approve_up_to is not None and (
                    card is None or card.account_currency != message.currency):
                answer = AnswerStatus.ERROR
                detail += "; no account in the request's currency"
        trace = [{"rule": "kill_switch", "passed": False,
                  "detail": f"{detail}: stand-in answer {answer.value}"}]
        return _write(connection, message, settings, budget, timer, received_at, answer=answer,
                      reason=Reason.KILL_SWITCH, detail=detail,
                      trace=trace, config=config, card=card, hold_source=HoldSource.STAND_IN)

    timer.start("card")
    card = _card_facts(connection, message.token_id)
    budget.check("card")

    timer.start("usage")
    usage = _usage(connection, card, message, config, received_at)
    budget.check("usage")

    timer.start("rules")
    facts = rules.Facts(amount=message.amount or 0, currency=message.currency or "",
                        mcc=merchant_field(message, "mcc"),
                        country=merchant_field(message, "country"), card=card, usage=usage)
    evaluation = rules.evaluate(facts, config)
    failed = evaluation.failed
    budget.check("rules")
    return _write(connection, message, settings, budget, timer, received_at,
                  answer=AnswerStatus.SUCCESS if failed is None else AnswerStatus.ERROR,
                  reason=evaluation.reason,
                  detail=f"{failed.name}: {failed.detail}" if failed else "all rules passed",
                  trace=evaluation.trace(), config=config, card=card)


def _write(connection: Connection, message: WebhookMessage, settings: DecisioningSettings,
           budget: Budget, timer: StageTimer, received_at: dt.datetime, *, answer: AnswerStatus,
           reason: Reason, detail: str, trace: list[dict], config: RuleConfig | None,
           card: rules.CardFacts | None, hold_source: HoldSource = HoldSource.DECISION
           ) -> Decision:
    hold_id = None
    if answer.approves and settings.mode is DecisioningMode.INTEGRATOR:
        timer.start("hold")
        hold_id = _place_hold(connection, message, settings, card, hold_source, received_at)
        if hold_id is None:
            trace = [*trace, {"rule": "hold", "passed": None,
                              "detail": "approved without a hold: no account in this currency"}]
    timer.start("record")
    record_id = _insert_record(connection, message, settings, received_at, answer=answer,
                               reason=reason, detail=detail, trace=trace, config=config,
                               card=card, timer=timer, budget=budget)
    return Decision(message.id, answer, reason, detail, record_id=record_id, hold_id=hold_id)


def _place_hold(connection: Connection, message: WebhookMessage,
                settings: DecisioningSettings, card: rules.CardFacts | None, source: HoldSource,
                now: dt.datetime) -> int | None:
    if card is None or card.account_id is None or card.account_currency != message.currency:
        return None
    return ledger.place_hold(
        connection, authorization_id=message.id, account_id=card.account_id,
        card_id=card.card_id, amount=message.amount or 0, currency=card.account_currency,
        source=source, expires_at=now + dt.timedelta(hours=settings.hold_ttl_hours), now=now)


def _insert_record(connection: Connection, message: WebhookMessage,
                   settings: DecisioningSettings, received_at: dt.datetime, *,
                   answer: AnswerStatus, reason: Reason, detail: str, trace: list[dict],
                   config: RuleConfig | None, card: rules.CardFacts | None, timer: StageTimer,
                   budget: Budget, default_used: bool = False) -> int:
    elapsed_ms = budget.elapsed_ms()
    return connection.execute(_INSERT_RECORD, {
        "authorization_id": message.id, "origin": Origin.REQUEST.value,
        "mode": settings.mode.value, "token_id": message.token_id or "",
        "card_id": card.card_id if card else None,
        "account_id": card.account_id if card else None, "amount": message.amount or 0,
        "currency": message.currency or "", "merchant_name": merchant_name_of(message),
        "mcc": merchant_field(message, "mcc"),
        "merchant_country": merchant_field(message, "country"),
        "finci_created_at": message.created_at, "received_at": received_at,
        "answer": answer.value, "reason": reason.value, "detail": detail[:300],
        "default_used": default_used, "rule_trace": trace, "latency_ms": dict(timer.stages),
        "total_ms": round(elapsed_ms, 3),
        "rule_config_version": config.version if config else None,
        "decided_at": received_at + dt.timedelta(milliseconds=elapsed_ms),
    }).scalar_one()


def _fallback(connection: Connection, guard: StatementDeadline, message: WebhookMessage,
              settings: DecisioningSettings, cause: Reason, detail: str, budget: Budget,
              timer: StageTimer, received_at: dt.datetime) -> Decision:
    """The safe default, recorded with why (best effort: the answer never waits on it).

    Runs in the decision's SAVEPOINT, rolled back and still open.
    """
    answer = settings.safe_default
    stage = timer.current
    timer.start("fallback")
    log.warning("authorization %s answered with the safe default: %s", message.id,
                cause.value, extra={"reason": cause.value, "stage": stage,
                                    "elapsed_ms": round(budget.elapsed_ms(), 1)})
    trace = [{"rule": "budget" if cause is Reason.BUDGET_EXCEEDED else "failure",
              "passed": False, "detail": detail[:300]}]
    try:
        record_id = _insert_record(connection, message, settings, received_at, answer=answer,
                                   reason=cause, detail=detail, trace=trace, config=None,
                                   card=None, timer=timer, budget=budget, default_used=True)
        guard.release_savepoint()
        return Decision(message.id, answer, cause, detail, default_used=True,
                        record_id=record_id)
    except IntegrityError:
        guard.rollback_savepoint()
        first = _replay(connection, message.id)
        guard.release_savepoint()
        if first is not None:
            return first
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise
        guard.rollback_savepoint()
        guard.release_savepoint()
        log.error("could not record the safe default for %s: %s", message.id,
                  type(exc.orig).__name__)
    except BudgetExceeded:
        guard.release_savepoint()  # nothing was sent
        log.error("no time left to record the safe default for %s", message.id)
    return Decision(message.id, answer, cause, detail, default_used=True)


# --- reads (prebuilt: compiled once per process, only the parameters change) -----------------

_DECISIONS = DecisionRecord.__table__
_CARDS = Card.__table__
_ACCOUNTS = LedgerAccount.__table__
_CONFIG_HEAD = head_version_query().subquery()

_FIRST_READS = select(
    select(_DECISIONS.c.id).where(_DECISIONS.c.authorization_id == bindparam("authorization_id"))
    .scalar_subquery().label("existing"),
    select(FlowSwitch.__table__.c.enabled)
    .where(FlowSwitch.__table__.c.flow == Flow.DECISIONING.value)
    .scalar_subquery().label("enabled"),
    select(_CONFIG_HEAD.c.version).scalar_subquery().label("version"),
    select(_CONFIG_HEAD.c.digest).scalar_subquery().label("digest"),
)

_REPLAY = select(_DECISIONS.c.id, _DECISIONS.c.origin, _DECISIONS.c.answer, _DECISIONS.c.reason,
                 _DECISIONS.c.detail, _DECISIONS.c.default_used,
                 _DECISIONS.c.advice_response_code).where(
    _DECISIONS.c.authorization_id == bindparam("authorization_id"))

# Locks the account row: two authorizations on one account cannot both spend the same
# available balance. (SQLite serialises writers instead; FOR UPDATE is not rendered there.)
_CARD_WITH_ACCOUNT = (
    select(_CARDS.c.id, _CARDS.c.status, _CARDS.c.currency, _CARDS.c.account_id,
           _ACCOUNTS.c.currency.label("account_currency"), _ACCOUNTS.c.posted_balance,
           _ACCOUNTS.c.held_amount)
    .select_from(_CARDS.join(_ACCOUNTS, _ACCOUNTS.c.id == _CARDS.c.account_id))
    .where(_CARDS.c.token_id == bindparam("token_id"))
    .with_for_update(of=_ACCOUNTS))
_CARD_ONLY = select(_CARDS.c.id, _CARDS.c.status, _CARDS.c.currency).where(
    _CARDS.c.token_id == bindparam("token_id"))

_INSERT_RECORD = insert(_DECISIONS).returning(_DECISIONS.c.id)


def _usage_query(spend: bool, velocity: bool):
    columns = []
    if spend:
        # Holds (counted when approved) plus presentments that no counting hold covers.
        for scope, key in (("card", "card_id"), ("account", "account_id")):
            for period in ("day", "month"):
                columns.append(
                    (ledger.spend_since(bindparam(period), **{key: bindparam(key)})
                     + unheld_spend_since(bindparam(period), **{key: bindparam(key)}))
                    .label(f"{scope}_{period}"))
    if velocity:
        columns.append(
            select(func.count()).select_from(_DECISIONS)
            .where(_DECISIONS.c.card_id == bindparam("card_id"),
                   _DECISIONS.c.origin == Origin.REQUEST.value,
                   _DECISIONS.c.received_at >= bindparam("velocity_since"))
            .scalar_subquery().label("card_recent_requests"))
    return select(*columns)


_USAGE = {(spend, velocity): _usage_query(spend, velocity)
          for spend in (True, False) for velocity in (True, False) if spend or velocity}


def _replay(connection: Connection, authorization_id: str) -> Decision | None:
    """The first answer for this authorization, if it was answered (or FINCI already decided)."""
    row = connection.execute(_REPLAY, {"authorization_id": authorization_id}).one_or_none()
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


def _card_facts(connection: Connection, token_id: str | None) -> rules.CardFacts | None:
    if not token_id:
        return None
    row = connection.execute(_CARD_WITH_ACCOUNT, {"token_id": token_id}).one_or_none()
    if row is not None:
        return rules.CardFacts(card_id=row.id, token_id=token_id, status=row.status,
                               currency=row.currency, account_id=row.account_id,
                               account_currency=row.account_currency,
                               posted=row.posted_balance, held=row.held_amount)
    card = connection.execute(_CARD_ONLY, {"token_id": token_id}).one_or_none()
    if card is None:
        return None
    return rules.CardFacts(card_id=card.id, token_id=token_id, status=card.status,
                           currency=card.currency, account_id=None, account_currency=None)


def _usage(connection: Connection, card: rules.CardFacts | None, message: WebhookMessage,
           config: RuleConfig, now: dt.datetime) -> rules.Usage | None:
    if card is None:
        return None
    spend = card.account_id is not None and config.needs_spend(message.currency or "")
    velocity = config.velocity_enabled
    if not (spend or velocity):
        return None
    params: dict = {"card_id": card.card_id}
    if spend:
        params["day"], params["month"] = config.windows(now)
        params["account_id"] = card.account_id
    if velocity:
        params["velocity_since"] = now - dt.timedelta(seconds=config.velocity_window_s)
    row = connection.execute(_USAGE[(spend, velocity)], params).one()._mapping
    return rules.Usage(**{name: int(value or 0) for name, value in row.items()})


def merchant_field(message: WebhookMessage, key: str) -> str | None:
    value = (message.merchant or {}).get(key)
    return value if isinstance(value, str) else None


def merchant_name_of(message: WebhookMessage) -> str | None:
    name = merchant_field(message, "name")
    return redact_text(name)[:200] if name else None
