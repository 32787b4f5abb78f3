"""Time-based lifecycle work (scheduler jobs): expiry of authorizations that never cleared,
presentments whose authorization never came, and retries of postings a repair may have fixed.

Expiry: an approved authorization with no presentment ``HOLD_EXPIRY_DAYS`` after FINCI created
it becomes ``expired`` and its hold is released. A hold the ledger's own expiry job already
released (``ledger.expire_holds``, decisioning's hold lifetime) marks its transaction expired
too, so the two windows can never leave a transaction "approved" with no funds held.

Orphans: a presentment waits (parked) for its authorization's advice; after
``ORPHAN_GRACE_HOURS`` it is posted without one: the money has moved at FINCI whatever we saw.

A late presentment after expiry still posts (directly, the hold being gone).

Ledger posting switched off (``Flow.LEDGER_POSTING``): orphans are not posted (they wait), and
postings parked by the switch are not orphans. ``post_switched_off`` posts those, once, when
the flow is back on.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.orm import Session

from console.audit import Actor, AuditAction, Target, record
from console.flows.services import Flow, is_enabled
from console.ledger.models import Hold, HoldStatus, ReleaseReason
from console.transactions.models import (
    CardTransaction,
    PostingStatus,
    TransactionPosting,
    TxnState,
)
from console.transactions.services import (
    SWITCHED_OFF,
    lock_transaction,
    mark_expired,
    retry_failed,
    settle,
)
from console.transactions.settings import LifecycleSettings

BATCH = 500


@dataclass(frozen=True)
class ExpiryReport:
    expired: list[int]
    orphans_posted: list[int]

    @property
    def summary(self) -> str:
        if not self.expired and not self.orphans_posted:
            return "nothing due"
        return (f"{len(self.expired)} authorizations expired, "
                f"{len(self.orphans_posted)} orphan presentments settled")


def expire_authorizations(session: Session, actor: Actor, settings: LifecycleSettings,
                          now: dt.datetime) -> ExpiryReport:
    cutoff = now - dt.timedelta(days=settings.hold_expiry_days)
    released_as_expired = exists().where(
        Hold.authorization_id == CardTransaction.authorization_id,
        Hold.status == HoldStatus.RELEASED.value,
        Hold.release_reason == ReleaseReason.EXPIRED.value)
    due = session.scalars(
        select(CardTransaction.id)
        .where(CardTransaction.state == TxnState.APPROVED.value,
               CardTransaction.expired_at.is_(None),
               or_(CardTransaction.authorized_at <= cutoff, released_as_expired))
        .order_by(CardTransaction.id).limit(BATCH)).all()
    expired = []
    for transaction_id in due:
        transaction = lock_transaction(session, transaction_id)
        # Re-checked under the lock: a presentment may have been processed meanwhile.
        if transaction is not None and transaction.state == TxnState.APPROVED.value:
            mark_expired(session, transaction, settings, now)
            expired.append(transaction_id)

    grace = now - dt.timedelta(hours=settings.orphan_grace_hours)
    parked = exists().where(TransactionPosting.transaction_id == CardTransaction.id,
                            TransactionPosting.status == PostingStatus.PARKED.value,
                            TransactionPosting.detail != SWITCHED_OFF,
                            TransactionPosting.created_at <= grace)
    orphans = [] if not is_enabled(session, Flow.LEDGER_POSTING) else session.scalars(
        select(CardTransaction.id)
        .where(and_(CardTransaction.authorization_id.is_not(None), parked))
        .order_by(CardTransaction.id).limit(BATCH)).all()
    settled = []
    for transaction_id in orphans:
        transaction = lock_transaction(session, transaction_id)
        if transaction is not None:
            settle(session, transaction, settings, now=now, posted_by=actor.id,
                   without_authorization=True)
            settled.append(transaction_id)

    if expired:
        record(session, actor=actor, action=AuditAction.TRANSACTIONS_AUTHORIZATIONS_EXPIRE,
               target=Target("transactions", str(len(expired))),
               details={"transactions": expired[:100], "window_days": settings.hold_expiry_days},
               at=now)
    if settled:
        record(session, actor=actor, action=AuditAction.TRANSACTIONS_ORPHANS_POST,
               target=Target("transactions", str(len(settled))),
               details={"transactions": settled[:100],
                        "grace_hours": settings.orphan_grace_hours}, at=now)
    return ExpiryReport(expired, settled)


@dataclass(frozen=True)
class SwitchedOffReport:
    settled: list[int]
    posted: int
    paused: bool = False

    @property
    def summary(self) -> str:
        if self.paused:
            return "ledger posting switched off: nothing posted"
        if not self.settled:
            return "nothing parked by the switch"
        return (f"{self.posted} postings parked by the switch posted, "
                f"{len(self.settled)} transactions settled")


def post_switched_off(session: Session, actor: Actor, settings: LifecycleSettings,
                      now: dt.datetime) -> SwitchedOffReport:
    """Once ledger posting is back on, post what it parked (each posting once: a posted one is
    no longer parked, and its journal reference is UNIQUE). Audited when there was work."""
    if not is_enabled(session, Flow.LEDGER_POSTING):
        return SwitchedOffReport([], 0, paused=True)
    due = session.scalars(
        select(TransactionPosting.transaction_id)
        .where(TransactionPosting.status == PostingStatus.PARKED.value,
               TransactionPosting.detail == SWITCHED_OFF)
        .group_by(TransactionPosting.transaction_id)
        .order_by(TransactionPosting.transaction_id).limit(BATCH)).all()
    settled, posted = [], 0
    for transaction_id in due:
        transaction = lock_transaction(session, transaction_id)
        if transaction is not None:
            posted += settle(session, transaction, settings, now=now, posted_by=actor.id).posted
            settled.append(transaction_id)
    if settled:
        record(session, actor=actor, action=AuditAction.TRANSACTIONS_PARKED_POST,
               target=Target("transactions", str(len(settled))),
               details={"transactions": settled[:100], "posted": posted}, at=now)
    return SwitchedOffReport(settled, posted)


def retry_repairable(session: Session, actor: Actor, settings: LifecycleSettings,
                     now: dt.datetime) -> str:
    if not is_enabled(session, Flow.LEDGER_POSTING):
        # A retry now could only park the posting again, and audit that as a failed retry:
        # repaired failures wait, still failed, until ledger posting is back on.
        return "ledger posting switched off: nothing retried"
    tried, posted = retry_failed(session, actor, settings, now=now)
    return f"{tried} failed postings retried, {posted} posted" if tried else "nothing to retry"
