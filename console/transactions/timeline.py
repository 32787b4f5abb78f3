"""One transaction end to end, in time order: the page, its fragment and ``flask trace`` all call
:func:`build` (and :func:`find` to get there from any identifier).

Events come from every record the transaction touched: each delivery of each message (duplicates
included) and its processing, our decision with its rule trace, the advice compared with it,
the hold, postings and their journals, the card's status changes and operator actions around
the transaction, and the audit entries that name any of them. Times are our clock except FINCI's
own ``created_at``, which is shown as each delivery's latency rather than as events of its own
(two clocks on one axis would invent an order). ``latency_ms`` is the time since the previous
event. Nothing here holds a card number: cards appear by token and masked number only.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, func, or_, select, tuple_
from sqlalchemy.orm import Session

from console import request_params
from console.audit.models import AuditEvent
from console.cards.models import Card, CardAction, CardStatusChange
from console.decisioning.models import DecisionRecord
from console.ingress.models import StoredMessage, WebhookDelivery
from console.ledger.models import Hold, LedgerEntry, LedgerJournal
from console.security.query_masking import masked_query_value
from console.security.redaction import redact_text
from console.transactions.models import (
    CardTransaction,
    TransactionMessage,
    TransactionPosting,
    TxnState,
)

# Card status changes and operator actions this close to a transaction are part of its story.
CARD_WINDOW = dt.timedelta(days=1)
MAX_RESULTS = 50


class Lane:
    FINCI = "finci"        # what FINCI sent us
    OURS = "ours"          # our decisions and processing
    LEDGER = "ledger"      # holds and postings
    CARD = "card"          # card status
    OPERATOR = "operator"  # people: card actions, retries, audit entries
    ALL = (FINCI, OURS, LEDGER, CARD, OPERATOR)


@dataclass
class Event:
    at: dt.datetime
    lane: str
    kind: str
    title: str
    detail: str = ""
    status: str = ""  # ok | warning | failure | duplicate: how the page colours it
    data: dict[str, Any] = field(default_factory=dict)
    latency_ms: float | None = None
    order: int = 0  # ties at the same instant keep the causal order they were added in

    def as_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["at"] = self.at.isoformat()
        values.pop("order")
        return values


@dataclass
class Timeline:
    transaction: CardTransaction
    card: Card | None
    events: list[Event]
    decision: DecisionRecord | None
    postings: list[TransactionPosting]

    @property
    def span_ms(self) -> float:
        if len(self.events) < 2:
            return 0.0
        return (self.events[-1].at - self.events[0].at).total_seconds() * 1000

    def facts(self) -> dict[str, Any]:
        t = self.transaction
        return {
            "id": t.id, "link_key": t.link_key, "authorization_id": t.authorization_id,
            "state": t.state, "token_id": t.token_id,
            "card": self.card.masked_number if self.card else None,
            "card_status": self.card.status if self.card else None,
            "currency": t.currency, "merchant": t.merchant_name, "mcc": t.mcc,
            "authorized": t.authorized_amount, "reversed": t.reversed_amount,
            "cleared": t.cleared_amount, "refunded": t.refunded_amount,
            "response_code": t.response_code, "awaiting_authorization": t.awaiting_authorization,
            "failed_postings": t.failed_postings,
            "first_event_at": t.first_event_at.isoformat(),
            "last_event_at": t.last_event_at.isoformat(),
            "expired_at": t.expired_at.isoformat() if t.expired_at else None,
        }

    def as_dict(self) -> dict[str, Any]:
        return {"transaction": self.facts(), "events": [e.as_dict() for e in self.events],
                "span_ms": round(self.span_ms, 3)}


def money(amount: int | None, currency: str | None = None) -> str:
    """Minor units as ``1,234.50 EUR`` (two-decimal currencies, as FINCI's programs use)."""
    if amount is None:
        return "-"
    return f"{Decimal(amount) / 100:,.2f} {currency or ''}".strip()


# --- building the timeline --------------------------------------------------------------------

class _Collector:
    def __init__(self):
        self.events: list[Event] = []

    def add(self, at: dt.datetime | None, lane: str, kind: str, title: str, detail: str = "",
            status: str = "ok", **data: Any) -> None:
        if at is None:
            return
        self.events.append(Event(at=at, lane=lane, kind=kind, title=title,
                                 detail=redact_text(detail)[:600], status=status, data=data,
                                 order=len(self.events)))

    def ordered(self) -> list[Event]:
        events = sorted(self.events, key=lambda e: (e.at, e.order))
        previous = None
        for event in events:
            if previous is not None:
                event.latency_ms = round((event.at - previous).total_seconds() * 1000, 3)
            previous = event.at
        return events


_ROLE_TITLES = {"request": "Authorization request", "advice": "Authorization advice",
                "reversal": "Reversal", "presentment": "Presentment", "refund": "Refund"}


def build(session: Session, transaction_id: int) -> Timeline | None:
    transaction = session.get(CardTransaction, transaction_id)
    if transaction is None:
        return None
    card = (session.get(Card, transaction.card_id) if transaction.card_id else None) or (
        session.scalar(select(Card).where(Card.token_id == transaction.token_id))
        if transaction.token_id else None)
    events = _Collector()
    links = session.execute(
        select(TransactionMessage, StoredMessage)
        .join(StoredMessage, StoredMessage.id == TransactionMessage.message_id)
        .where(TransactionMessage.transaction_id == transaction.id)).all()
    message_ids = [stored.id for _link, stored in links]
    deliveries: dict[int, list[WebhookDelivery]] = {}
    for delivery in session.scalars(select(WebhookDelivery)
                                    .where(WebhookDelivery.message_id.in_(message_ids))
                                    .order_by(WebhookDelivery.id)):
        deliveries.setdefault(delivery.message_id, []).append(delivery)

    decision = None
    if transaction.authorization_id:
        decision = session.scalar(select(DecisionRecord).where(
            DecisionRecord.authorization_id == transaction.authorization_id))

    for link, stored in links:
        title = _ROLE_TITLES[link.role]
        for delivery in deliveries.get(stored.id, []):
            delay = (delivery.received_at - link.finci_created_at).total_seconds() * 1000
            first = delivery.disposition == "first"
            events.add(delivery.received_at, Lane.FINCI, f"{link.role}.delivery",
                       title if first else f"{title}: {delivery.disposition} delivery",
                       f"{link.finci_id}: {money(link.amount, link.currency)}"
                       + (f", {link.response_code}" if link.response_code else "")
                       + f"; delivered {delay:.0f} ms after FINCI created it"
                       + ("" if first else " (same message again: not applied twice)"),
                       status="ok" if first else ("duplicate" if delivery.disposition ==
                                                  "duplicate" else "warning"),
                       message_id=stored.id, webhook_id=delivery.webhook_id,
                       finci_id=link.finci_id, disposition=delivery.disposition,
                       answer=delivery.answer_status, delivery_latency_ms=round(delay, 3))
            if first and link.role == "request" and decision is not None:
                _decision_events(events, decision, stored)
        events.add(stored.processed_at, Lane.OURS, f"{link.role}.processed",
                   f"{title} processed", f"worker outcome: {stored.outcome or stored.status}",
                   status="ok" if stored.status == "processed" else "warning",
                   message_id=stored.id, attempts=stored.attempts)
    if decision is not None and decision.advice_received_at is not None:
        divergent = decision.divergent
        events.add(decision.advice_received_at, Lane.OURS, "advice.compared",
                   "Advice compared with our answer",
                   f"{decision.advice_outcome}: FINCI said {decision.advice_response_code}; "
                   f"hold {decision.hold_action}",
                   status="warning" if divergent else "ok",
                   outcome=decision.advice_outcome, hold_action=decision.hold_action)
    if decision is not None and decision.origin == "advice":
        events.add(decision.received_at, Lane.OURS, "decision.none",
                   "No request before the advice", "FINCI decided on its own",
                   status="warning")

    _ledger_events(session, events, transaction)
    postings = list(session.scalars(select(TransactionPosting)
                                    .where(TransactionPosting.transaction_id == transaction.id)
                                    .order_by(TransactionPosting.id)))
    for posting in postings:
        if posting.status == "failed":
            events.add(posting.updated_at, Lane.LEDGER, "posting.failed",
                       f"{posting.kind.title()} posting failed: {posting.reason}",
                       posting.detail, status="failure", posting_id=posting.id,
                       reason=posting.reason)
        elif posting.status == "parked":
            events.add(posting.created_at, Lane.LEDGER, "posting.parked",
                       f"{posting.kind.title()} parked", "waiting for its authorization",
                       status="warning", posting_id=posting.id)
        elif posting.status == "skipped":
            events.add(posting.updated_at, Lane.LEDGER, "posting.skipped",
                       f"{posting.kind.title()} not posted", posting.detail,
                       posting_id=posting.id)
    if card is not None:
        _card_events(session, events, transaction, card)
    _audit_events(session, events, transaction, card, postings, message_ids)
    return Timeline(transaction, card, events.ordered(), decision, postings)


def _decision_events(events: _Collector, decision: DecisionRecord, stored: StoredMessage):
    if decision.origin != "request":
        return
    approve = decision.answer == "success"
    failed = [r for r in decision.rule_trace or [] if r.get("passed") is False]
    detail = f"{decision.reason}: {decision.detail}"
    if decision.total_ms is not None:
        detail += f"; answered in {decision.total_ms:.1f} ms"
    events.add(decision.decided_at or decision.received_at, Lane.OURS, "decision",
               f"Our decision: {'approve' if approve else 'decline'}", detail,
               status="ok" if approve else "warning", answer=decision.answer,
               reason=decision.reason, default_used=decision.default_used,
               rule_trace=decision.rule_trace or [], stages_ms=decision.latency_ms or {},
               total_ms=decision.total_ms, failed_rules=[r.get("rule") for r in failed],
               rule_config_version=decision.rule_config_version, message_id=stored.id,
               decision_id=decision.id)


def _ledger_events(session: Session, events: _Collector, transaction: CardTransaction):
    hold = (session.scalar(select(Hold).where(Hold.authorization_id ==
                                               transaction.authorization_id))
            if transaction.authorization_id else None)
    if hold is not None:
        events.add(hold.placed_at, Lane.LEDGER, "hold.placed",
                   f"Hold placed ({hold.source})", money(hold.amount, hold.currency),
                   hold_id=hold.id)
        events.add(hold.released_at, Lane.LEDGER, "hold.released",
                   f"Hold released ({hold.release_reason})", "funds available again",
                   hold_id=hold.id)
        events.add(hold.converted_at, Lane.LEDGER, "hold.converted",
                   "Hold converted", f"replaced by journal {hold.converted_journal_id}",
                   hold_id=hold.id)
    references = [f"{kind}:{finci_id}" for kind, finci_id in session.execute(
        select(TransactionPosting.kind, TransactionPosting.finci_id)
        .where(TransactionPosting.transaction_id == transaction.id))]
    if not references:
        return
    for journal in session.scalars(select(LedgerJournal)
                                   .where(LedgerJournal.reference.in_(references))):
        entries = session.execute(select(LedgerEntry.account_id, LedgerEntry.amount,
                                         LedgerEntry.currency)
                                  .where(LedgerEntry.journal_id == journal.id)
                                  .order_by(LedgerEntry.id)).all()
        detail = "; ".join(f"account {a}: {'+' if m > 0 else ''}{money(m, c)}"
                           for a, m, c in entries)
        events.add(journal.posted_at, Lane.LEDGER, "posting.posted",
                   f"Posted: {journal.kind}", f"journal {journal.id} ({journal.reference}): "
                   f"{detail}", journal_id=journal.id, posted_by=journal.posted_by)


def _card_events(session: Session, events: _Collector, transaction: CardTransaction,
                 card: Card):
    start = transaction.first_event_at - CARD_WINDOW
    end = max(transaction.last_event_at, transaction.updated_at) + CARD_WINDOW
    for change in session.scalars(select(CardStatusChange).where(
            CardStatusChange.token_id == card.token_id,
            CardStatusChange.recorded_at.between(start, end))):
        what = change.to_status or "-"
        if change.stage:
            what += f" / {change.stage}"
        events.add(change.recorded_at, Lane.CARD, "card.status",
                   f"Card status: {what} ({change.source})",
                   f"from {change.from_status or '-'}"
                   + ("" if change.applied else "; older than the card's status: recorded only")
                   + ("" if change.modelled else "; outside the transition model"),
                   status="ok" if change.applied and change.modelled else "warning",
                   change_id=change.id)
    for action in session.scalars(select(CardAction).where(
            CardAction.card_id == card.id, CardAction.requested_at.between(start, end))):
        events.add(action.requested_at, Lane.OPERATOR, "card.action",
                   f"Operator asked: {action.action.replace('_', ' ')}",
                   f"by {action.requested_by}: {action.reason}; now {action.status}"
                   + (f" ({action.last_error})" if action.last_error else ""),
                   status="failure" if action.status in ("failed", "refused") else "ok",
                   action_id=action.id)


def _audit_events(session: Session, events: _Collector, transaction: CardTransaction,
                  card: Card | None, postings: list[TransactionPosting], message_ids: list[int]):
    targets = [("transaction", str(transaction.id))]
    targets += [("transaction_posting", str(p.id)) for p in postings]
    targets += [("message", str(m)) for m in message_ids]
    condition = tuple_(AuditEvent.target_type, AuditEvent.target_id).in_(targets)
    if card is not None:
        start = transaction.first_event_at - CARD_WINDOW
        end = max(transaction.last_event_at, transaction.updated_at) + CARD_WINDOW
        condition = or_(condition, and_(AuditEvent.target_type == "card",
                                        AuditEvent.target_id == card.token_id,
                                        AuditEvent.occurred_at.between(start, end)))
    for event in session.scalars(select(AuditEvent).where(condition)
                                 .order_by(AuditEvent.seq).limit(200)):
        events.add(event.occurred_at, Lane.OPERATOR, "audit", f"Audit: {event.action}",
                   f"{event.actor_type} {event.actor_id}, {event.outcome}: "
                   f"{_audit_summary(event.details)}",
                   status="ok" if event.outcome == "success" else "warning",
                   seq=event.seq, action=event.action)


def _audit_summary(details: str) -> str:
    try:
        document = json.loads(details)
    except ValueError:
        return ""
    keep = {k: v for k, v in document.items() if k in (
        "reason", "previous_reason", "action", "error", "state", "attempt", "gave_up")}
    return json.dumps(keep, sort_keys=True) if keep else ""


# --- the SVG time axis ------------------------------------------------------------------------

@dataclass(frozen=True)
class Point:
    x: float
    y: float
    index: int
    status: str
    label: str


@dataclass(frozen=True)
class Axis:
    width: int
    height: int
    left: int
    lanes: list[tuple[str, float]]
    ticks: list[tuple[float, str]]
    points: list[Point]


_TICKS = [(0, "0"), (1, "1 ms"), (10, "10 ms"), (100, "100 ms"), (1_000, "1 s"),
          (10_000, "10 s"), (60_000, "1 min"), (600_000, "10 min"), (3_600_000, "1 h"),
          (86_400_000, "1 d"), (7 * 86_400_000, "7 d"), (30 * 86_400_000, "30 d")]


def axis(timeline: Timeline, width: int = 960, lane_height: int = 26, left: int = 80) -> Axis:
    """Events on a log time axis (milliseconds to days on one line), one row per lane."""
    events = timeline.events
    lanes = [lane for lane in Lane.ALL if any(e.lane == lane for e in events)]
    rows = {lane: 18 + index * lane_height for index, lane in enumerate(lanes)}
    usable = width - left - 16
    span = max(timeline.span_ms, 1.0)

    def x(ms: float) -> float:
        return round(left + usable * (math.log1p(max(ms, 0.0)) / math.log1p(span)), 1)

    start = events[0].at if events else None
    points = [Point(x((e.at - start).total_seconds() * 1000), rows[e.lane], i, e.status,
                    f"{e.title} (+{(e.at - start).total_seconds() * 1000:.0f} ms)")
              for i, e in enumerate(events)] if start else []
    ticks = [(x(ms), label) for ms, label in _TICKS if ms <= span]
    return Axis(width, 18 + len(lanes) * lane_height + 14, left,
                [(lane, y) for lane, y in rows.items()], ticks, points)


# --- finding a transaction from any identifier -----------------------------------------------

@dataclass(frozen=True)
class Query:
    text: str = ""
    amount: int | None = None     # minor units
    day: dt.date | None = None
    state: str | None = None      # a TxnState value (the state chips on the search page)

    @property
    def empty(self) -> bool:
        return not self.text and self.amount is None and self.day is None and self.state is None


class QueryInvalid(ValueError):
    pass


def parse_query(text: str | None, amount: str | None = None, day: str | None = None,
                state: str | None = None) -> Query:
    """The search form's fields. A full card number typed in is masked before anything else.

    Masked as in every query string (``console.security.query_masking``): FINCI's ids are long
    digit strings too (its published authorization id is ``251001435963146785``) and are
    searched as typed, or an operator could not trace a transaction by the id FINCI support
    quotes."""
    text = masked_query_value((text or "").strip()[:220])
    try:
        minor = request_params.amount("amount", amount)
        parsed_day = request_params.date("date", day)
    except request_params.ParameterInvalid as invalid:
        raise QueryInvalid(invalid.description) from None
    state = (state or "").strip() or None
    if state is not None and state not in set(TxnState):
        raise QueryInvalid(f"state must be one of {', '.join(TxnState)}")
    return Query(text, minor, parsed_day, state)


def masked_pattern(text: str) -> str | None:
    """``545454…1234`` / ``5454-54**-****-1234`` / ``545454******1234`` → the stored mask."""
    digits = re.sub(r"[^0-9*.…]", "", text)
    match = re.fullmatch(r"([0-9]{6})[*.…]+([0-9]{4})", digits)
    if match is None:
        return None
    head, tail = match.groups()
    return f"{head[:4]}-{head[4:]}**-****-{tail}"


def find(session: Session, query: Query, limit: int = MAX_RESULTS) -> list[CardTransaction]:
    """Transactions matching any identifier (authorization id, any message's FINCI id or
    webhook-id, token id, masked card number), narrowed by amount and date; newest first."""
    conditions = []
    if query.text:
        text = query.text
        by_message = select(TransactionMessage.transaction_id).where(
            TransactionMessage.finci_id == text)
        by_webhook = (select(TransactionMessage.transaction_id)
                      .join(StoredMessage, StoredMessage.id == TransactionMessage.message_id)
                      .where(StoredMessage.webhook_id == text))
        by_delivery = (select(TransactionMessage.transaction_id)
                       .join(WebhookDelivery,
                             WebhookDelivery.message_id == TransactionMessage.message_id)
                       .where(WebhookDelivery.webhook_id == text))
        tokens = [text]
        masked = masked_pattern(text)
        if masked:
            tokens += list(session.scalars(select(Card.token_id)
                                           .where(Card.masked_number == masked)))
        conditions.append(or_(
            CardTransaction.authorization_id == text,
            CardTransaction.link_key.in_([f"{kind}:{text}" for kind in
                                          ("presentment", "refund", "reversal")]),
            CardTransaction.id.in_(by_message), CardTransaction.id.in_(by_webhook),
            CardTransaction.id.in_(by_delivery), CardTransaction.token_id.in_(tokens)))
    if query.amount is not None:
        conditions.append(or_(
            CardTransaction.authorized_amount == query.amount,
            CardTransaction.cleared_amount == query.amount,
            CardTransaction.id.in_(select(TransactionMessage.transaction_id)
                                   .where(TransactionMessage.amount == query.amount))))
    if query.day is not None:
        start = dt.datetime.combine(query.day, dt.time(), tzinfo=dt.UTC)
        end = start + dt.timedelta(days=1)
        conditions.append(CardTransaction.id.in_(
            select(TransactionMessage.transaction_id)
            .where(TransactionMessage.finci_created_at >= start,
                   TransactionMessage.finci_created_at < end)))
    if query.state is not None:
        conditions.append(CardTransaction.state == query.state)
    statement = select(CardTransaction).order_by(CardTransaction.last_event_at.desc(),
                                                 CardTransaction.id.desc()).limit(limit)
    if conditions:
        statement = statement.where(*conditions)
    return list(session.scalars(statement))


def attention(session: Session, limit: int = MAX_RESULTS) -> list[CardTransaction]:
    """Transactions needing an operator: failed postings, presentments still parked."""
    return list(session.scalars(
        select(CardTransaction)
        .where(or_(CardTransaction.failed_postings > 0, CardTransaction.id.in_(_PARKED)))
        .order_by(CardTransaction.updated_at.desc()).limit(limit)))


def parked(session: Session, limit: int = MAX_RESULTS) -> list[CardTransaction]:
    """Transactions with a presentment waiting for its authorization's advice."""
    return list(session.scalars(
        select(CardTransaction).where(CardTransaction.id.in_(_PARKED))
        .order_by(CardTransaction.first_event_at).limit(limit)))


_PARKED = select(TransactionPosting.transaction_id).where(TransactionPosting.status == "parked")


def transaction_of_message(session: Session, message_id: int) -> int | None:
    """The transaction a stored message is linked to, if the lifecycle linked it."""
    return session.scalar(select(TransactionMessage.transaction_id)
                          .where(TransactionMessage.message_id == message_id))


def counts_by_state(session: Session) -> dict[str, int]:
    return {state: count for state, count in session.execute(
        select(CardTransaction.state, func.count()).group_by(CardTransaction.state))}
