"""What a switch would affect: the last hour's volume and amount of each flow, shown next to
its form so nobody turns a flow off without seeing what goes through it.

Each figure is one aggregate over a time-indexed column (decision_record.received_at,
webhook_message.received_at, transaction_posting.created_at, card_action.requested_at,
audit_event.occurred_at for reveals).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from console.audit.actions import AuditAction, Outcome
from console.audit.models import AuditEvent
from console.cards.models import CardAction
from console.db import utcnow
from console.decisioning.models import DecisionRecord, Origin
from console.flows.services import Flow
from console.ingress.models import StoredMessage
from console.ledger.money import format_minor
from console.transactions.models import TransactionPosting

WINDOW = dt.timedelta(hours=1)


@dataclass(frozen=True)
class Impact:
    flow: Flow
    count: int
    what: str  # e.g. "authorization requests"
    # (currency, amount in minor units), by currency; empty where a flow carries no amounts.
    amounts: tuple[tuple[str, int], ...] = field(default=())
    note: str | None = None

    @property
    def amount_text(self) -> str:
        return ", ".join(format_minor(amount, currency) for currency, amount in self.amounts)


def _by_currency(session: Session, amount, currency, *conditions) -> tuple[int, tuple]:
    rows = session.execute(select(currency, func.count(), func.coalesce(func.sum(amount), 0))
                           .where(*conditions).group_by(currency).order_by(currency)).all()
    return (sum(int(row[1]) for row in rows),
            tuple((row[0], int(row[2])) for row in rows))


def last_hour(session: Session, now: dt.datetime | None = None) -> dict[Flow, Impact]:
    since = (now or utcnow()) - WINDOW
    count, amounts = _by_currency(session, DecisionRecord.amount, DecisionRecord.currency,
                                  DecisionRecord.received_at >= since,
                                  DecisionRecord.origin == Origin.REQUEST)
    impacts = {Flow.DECISIONING: Impact(Flow.DECISIONING, count, "authorization requests",
                                        amounts)}
    received = session.scalar(select(func.count()).select_from(StoredMessage)
                              .where(StoredMessage.received_at >= since)) or 0
    impacts[Flow.PROCESSING] = Impact(Flow.PROCESSING, int(received), "messages received")
    count, amounts = _by_currency(session, TransactionPosting.amount,
                                  TransactionPosting.currency,
                                  TransactionPosting.created_at >= since)
    impacts[Flow.LEDGER_POSTING] = Impact(Flow.LEDGER_POSTING, count,
                                          "presentments and refunds", amounts)
    actions = session.scalar(select(func.count()).select_from(CardAction)
                             .where(CardAction.requested_at >= since)) or 0
    impacts[Flow.CARD_ACTIONS] = Impact(Flow.CARD_ACTIONS, int(actions), "card actions requested")
    # Successful reveals, read from the audit log (console.keys.reveal keeps no other record).
    reveals = session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == AuditAction.CARDS_CARD_DATA_REVEAL.value,
        AuditEvent.outcome == Outcome.SUCCESS.value, AuditEvent.occurred_at >= since)) or 0
    impacts[Flow.REVEAL] = Impact(Flow.REVEAL, int(reveals), "card numbers revealed",
                                  note="no reveals in the last hour")
    return impacts
