"""Which transaction a message belongs to, whatever order messages arrive in.

FINCI ties a transaction together by the authorization's ``id``: the request and the advice carry
it as their own ``id``; reversals, presentments and refunds carry it as ``authorization_id`` when
an authorization preceded them. So the link key is ``auth:<authorization id>`` for all of those,
and ``<type>:<own id>`` for a message that names no authorization (presentment-first, an unlinked
refund). The first message to arrive creates the transaction row; every later one finds it by the
UNIQUE key, so a presentment that arrives before its authorization (an orphan) simply creates
the row the authorization later joins. Nothing is re-keyed, nothing is moved.

Creation is ``INSERT … ON CONFLICT DO NOTHING`` then ``SELECT … FOR UPDATE``: two workers
processing two messages of one transaction serialise on its row instead of failing.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from console.cards.models import Card
from console.decisioning.services import merchant_field, merchant_name_of
from console.finci.contract import MessageType
from console.finci.payload import WebhookMessage
from console.ingress.models import StoredMessage
from console.transactions.models import (
    CardTransaction,
    PostingStatus,
    Role,
    TransactionMessage,
    TransactionPosting,
    TxnState,
)

LIFECYCLE_TYPES = frozenset({MessageType.AUTHORIZATION, MessageType.REVERSAL,
                             MessageType.PRESENTMENT, MessageType.REFUND})
MAX_AUTHORIZATION_ID = 200


class Unlinkable(ValueError):
    """The message cannot belong to any transaction (retrying cannot change that)."""


def role_of(message: WebhookMessage) -> Role:
    if message.type == MessageType.AUTHORIZATION:
        return Role.ADVICE if message.advice else Role.REQUEST
    if message.type in LIFECYCLE_TYPES:
        return Role(message.type)
    raise Unlinkable(f"{message.type} messages are not part of a transaction")


def authorization_of(message: WebhookMessage) -> str | None:
    """The authorization id a message belongs to, or None (presentment-first, unlinked)."""
    if message.type == MessageType.AUTHORIZATION:
        return message.id
    authorization_id = message.authorization_id
    if authorization_id is not None and len(authorization_id) > MAX_AUTHORIZATION_ID:
        raise Unlinkable(f"authorization_id longer than {MAX_AUTHORIZATION_ID} characters")
    return authorization_id or None


def link_key(message: WebhookMessage) -> str:
    authorization_id = authorization_of(message)
    if authorization_id is not None:
        return f"auth:{authorization_id}"
    return f"{message.type}:{message.id}"


_TRANSACTIONS = CardTransaction.__table__
_LINKS = TransactionMessage.__table__
_POSTINGS = TransactionPosting.__table__
_DIALECTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def _insert_ignoring_conflict(session: Session, table, values: dict, key: str) -> bool:
    """INSERT unless a row with the same ``key`` exists; True if this call inserted it."""
    insert = _DIALECTS[session.get_bind().dialect.name]
    return session.execute(insert(table).values(**values).on_conflict_do_nothing(
        index_elements=[key]).returning(table.c.id)).first() is not None


def transaction_for(session: Session, message: WebhookMessage,
                    now: dt.datetime) -> CardTransaction:
    """The message's transaction, created if this is the first message of it; row-locked."""
    key = link_key(message)
    _insert_ignoring_conflict(session, _TRANSACTIONS, dict(
        link_key=key, authorization_id=authorization_of(message), token_id=message.token_id,
        card_id=None, currency=message.currency, merchant_name=merchant_name_of(message),
        mcc=merchant_field(message, "mcc"), state=TxnState.REQUESTED.value,
        first_event_at=message.created_at, last_event_at=message.created_at,
        created_at=now, updated_at=now,
    ), "link_key")
    transaction = session.scalar(select(CardTransaction).where(CardTransaction.link_key == key)
                                 .with_for_update().execution_options(populate_existing=True))
    assert transaction is not None  # noqa: S101 - inserted or already there, and locked
    if transaction.card_id is None and transaction.token_id:
        # Looked up until found: the card may become known after the first message.
        transaction.card_id = session.scalar(select(Card.id).where(
            Card.token_id == transaction.token_id))
    return transaction


def link(session: Session, stored: StoredMessage, message: WebhookMessage,
         now: dt.datetime) -> tuple[CardTransaction, bool]:
    """Link one stored message to its transaction; ``(transaction, newly_linked)``.

    Linking the same message again (a replay) changes nothing: ``message_id`` is UNIQUE on both
    the link and the posting. Presentments and refunds get their posting row here, parked until
    ``services.settle`` decides.
    """
    role = role_of(message)
    transaction = transaction_for(session, message, now)
    linked = _insert_ignoring_conflict(session, _LINKS, dict(
        transaction_id=transaction.id, message_id=stored.id, role=role.value,
        finci_id=message.id, amount=message.amount, currency=message.currency,
        response_code=(message.response_code or None) and message.response_code[:64],
        finci_created_at=message.created_at, linked_at=now,
    ), "message_id")
    if not linked:
        return transaction, False  # linked before (a replay)
    if role in (Role.PRESENTMENT, Role.REFUND):
        _insert_ignoring_conflict(session, _POSTINGS, dict(
            transaction_id=transaction.id, message_id=stored.id, kind=role.value,
            finci_id=message.id, amount=message.amount or 0,
            currency=message.currency or "", status=PostingStatus.PARKED.value, detail="",
            attempts=0, created_at=now, updated_at=now,
        ), "message_id")
    return transaction, True
