"""Spending the ledger's holds do not show: presentments posted without a hold that counts.

Decisioning's spend limits count holds (``console.ledger.services.spend_since``): an approved
authorization reserves its amount when it is approved, so it counts at authorization time even
after clearing converts the hold. Money can also leave with no hold behind it: a presentment
FINCI sends without an authorization (a force post), one whose authorization we never held
(decided by FINCI, or before the card was known), or one that clears after its hold was released
(expired or reversed). Those count here, when they are posted.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import exists, func, select

from console.cards.models import Card
from console.ledger.models import Hold, HoldStatus
from console.transactions.models import CardTransaction, PostingStatus, Role, TransactionPosting


def unheld_spend_since(since: dt.datetime, *, card_id=None, account_id=None):
    """A scalar subquery: presentments posted since ``since`` with no counting hold, for a card
    or for every card of an account (``card_id``/``account_id`` may be bind parameters)."""
    counting_hold = exists().where(Hold.authorization_id == CardTransaction.authorization_id,
                                   Hold.status != HoldStatus.RELEASED.value)
    query = (select(func.coalesce(func.sum(TransactionPosting.amount), 0))
             .join(CardTransaction, CardTransaction.id == TransactionPosting.transaction_id)
             .where(TransactionPosting.kind == Role.PRESENTMENT.value,
                    TransactionPosting.status == PostingStatus.POSTED.value,
                    TransactionPosting.posted_at >= since, ~counting_hold,
                    # Implied (posting settles its transaction, which stamps updated_at) and
                    # indexed with card_id: only the card's recently changed transactions.
                    CardTransaction.updated_at >= since))
    if card_id is not None:
        query = query.where(CardTransaction.card_id == card_id)
    if account_id is not None:
        query = query.where(CardTransaction.card_id.in_(
            select(Card.id).where(Card.account_id == account_id)))
    return query.scalar_subquery()
