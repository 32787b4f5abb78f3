"""A transaction's state and amounts, and our ledger brought in line with them.

``settle`` runs after every linked message (and after repairs, retries and expiry). It never
accumulates: the state is ``derive``d from the set of linked messages each time, so any order
and any duplication of the same messages gives the same result. Ledger effects follow the same
rule, each keyed so it can happen once only:

- a presentment or refund posts one journal with the UNIQUE reference ``presentment:<id>`` /
  ``refund:<id>`` (replays post nothing new);
- the authorization's hold (placed by decisioning) is driven towards what the messages say:
  reduced by partial reversals, released when reversed in full, declined or expired, and
  converted by the first posted presentment (the remainder of a partial presentment is freed).

A presentment that names an authorization waits (``parked``) until FINCI's advice, the source of
truth for the outcome, is linked: only then can "over the hold" be judged the same way in every
arrival order. Presentments with no authorization post directly. Posting failures are recorded
with a reason and left for repair (``retry_postings``); they are never retried blindly.

Kill switch (``Flow.LEDGER_POSTING``): while it is off, a posting that is ready to post stays
``parked`` with the detail ``SWITCHED_OFF`` instead (the transaction's state, timeline and hold
are still settled: a parked presentment neither converts nor releases the hold). The two
reasons for ``parked`` stay apart: waiting for the authorization has no such detail. Once the
flow is back on, ``post_switched_off`` (a scheduler job) settles those transactions again.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from console.audit import Actor, AuditAction, Outcome, Target, record
from console.cards.models import Card
from console.db import utcnow
from console.decisioning.models import DecisionRecord, Origin, Reason
from console.finci.contract import ResponseCode
from console.flows.services import Flow, is_enabled
from console.ledger import services as ledger
from console.ledger.models import HoldStatus, LedgerAccount, ReleaseReason
from console.monitoring.event_counts import POSTING_FAILURES, count_event
from console.transactions.models import (
    CardTransaction,
    FailureReason,
    PostingStatus,
    Role,
    TransactionMessage,
    TransactionPosting,
    TxnState,
)
from console.transactions.settings import LifecycleSettings

log = logging.getLogger(__name__)

# The detail of a posting parked because the ledger posting kill switch is off.
SWITCHED_OFF = "ledger posting switched off (kill switch): posted when it is back on"


# --- the state, derived ----------------------------------------------------------------------

@dataclass(frozen=True)
class Linked:
    role: Role
    amount: int
    response_code: str | None
    finci_created_at: dt.datetime


@dataclass(frozen=True)
class Derived:
    state: TxnState
    # True approved, False declined, None not known yet (no advice, no decision of ours).
    outcome: bool | None
    authorized: int
    reversed: int
    cleared: int
    refunded: int
    has_request: bool
    has_advice: bool
    awaiting_authorization: bool
    response_code: str | None
    authorized_at: dt.datetime | None
    first_event_at: dt.datetime
    last_event_at: dt.datetime


def derive(links: Sequence[Linked], *, names_authorization: bool, our_answer: str | None,
           posting_statuses: Iterable[str], expired: bool) -> Derived:
    """The transaction's state from its messages alone: a pure function of the set.

    ``posting_statuses`` are those of its presentments: all posted makes it ``posted``.

    ``our_answer`` is decisioning's ``success``/``error`` when it decided the request itself
    (not an acknowledgement in a FINCI-managed program); FINCI's advice overrides it.
    """
    by_role: dict[Role, list[Linked]] = {role: [] for role in Role}
    for link in links:
        by_role[link.role].append(link)
    request = by_role[Role.REQUEST][0] if by_role[Role.REQUEST] else None
    advice = by_role[Role.ADVICE][0] if by_role[Role.ADVICE] else None

    if advice is not None:
        outcome: bool | None = advice.response_code == ResponseCode.APPROVED.value
        authorized = advice.amount if outcome else 0
    elif request is not None and our_answer is not None:
        outcome = our_answer == "success"
        authorized = request.amount if outcome else 0
    else:
        outcome, authorized = None, 0
    reversed_ = sum(link.amount for link in by_role[Role.REVERSAL])
    cleared = sum(link.amount for link in by_role[Role.PRESENTMENT])
    refunded = sum(link.amount for link in by_role[Role.REFUND])
    presentment_statuses = list(posting_statuses)
    presented = bool(by_role[Role.PRESENTMENT])

    if by_role[Role.REFUND]:
        state = TxnState.REFUNDED
    elif presented:
        state = (TxnState.POSTED if presentment_statuses
                 and all(s == PostingStatus.POSTED for s in presentment_statuses)
                 else TxnState.CLEARED)
    elif outcome is False:
        state = TxnState.DECLINED
    elif by_role[Role.REVERSAL] and reversed_ >= authorized:
        state = TxnState.REVERSED
    elif outcome and expired:
        state = TxnState.EXPIRED
    elif outcome:
        state = TxnState.APPROVED
    else:
        state = TxnState.REQUESTED
    authorization_messages = [m for m in (request, advice) if m is not None]
    times = [link.finci_created_at for link in links]
    return Derived(
        state=state, outcome=outcome, authorized=authorized, reversed=reversed_,
        cleared=cleared, refunded=refunded, has_request=request is not None,
        has_advice=advice is not None,
        awaiting_authorization=names_authorization and not authorization_messages,
        response_code=advice.response_code if advice else None,
        authorized_at=min((m.finci_created_at for m in authorization_messages), default=None),
        first_event_at=min(times), last_event_at=max(times),
    )


def our_answer(session: Session, authorization_id: str | None) -> str | None:
    """Decisioning's answer when it decided the request (None for acknowledgements)."""
    if authorization_id is None:
        return None
    row = session.execute(select(DecisionRecord.origin, DecisionRecord.answer,
                                 DecisionRecord.reason)
                          .where(DecisionRecord.authorization_id == authorization_id)
                          ).one_or_none()
    if row is None or row.origin != Origin.REQUEST.value:
        return None
    if row.reason == Reason.FINCI_MANAGED.value:
        return None
    return row.answer


def links_of(session: Session, transaction_id: int) -> list[Linked]:
    return [Linked(Role(row.role), row.amount or 0, row.response_code, row.finci_created_at)
            for row in session.execute(
                select(TransactionMessage.role, TransactionMessage.amount,
                       TransactionMessage.response_code, TransactionMessage.finci_created_at)
                .where(TransactionMessage.transaction_id == transaction_id)
                .order_by(TransactionMessage.finci_created_at, TransactionMessage.id))]


def postings_of(session: Session, transaction_id: int) -> list[TransactionPosting]:
    # Presentments first, then refunds, each by FINCI id: the same order whatever the arrival
    # order (the first posted presentment is the one a hold is converted into).
    return list(session.scalars(
        select(TransactionPosting).where(TransactionPosting.transaction_id == transaction_id)
        .order_by(TransactionPosting.kind, TransactionPosting.finci_id)))


# --- settling: state and ledger in line with the messages ------------------------------------

@dataclass(frozen=True)
class Settled:
    state: TxnState
    posted: int = 0
    failed: int = 0
    parked: int = 0
    hold: str | None = None  # what happened to the hold, if anything

    @property
    def summary(self) -> str:
        parts = [self.state.value]
        if self.posted:
            parts.append(f"{self.posted} posted")
        if self.failed:
            parts.append(f"{self.failed} posting failed")
        if self.parked:
            parts.append(f"{self.parked} parked")
        if self.hold:
            parts.append(f"hold {self.hold}")
        return ", ".join(parts)


def settle(session: Session, transaction: CardTransaction, settings: LifecycleSettings, *,
           now: dt.datetime | None = None, posted_by: str = "pipeline",
           without_authorization: bool = False) -> Settled:
    """Bring the transaction (locked by the caller) and the ledger in line with its messages.

    ``without_authorization``: post parked presentments even though their authorization never
    arrived (the orphan grace period has passed; see ``expiry``).
    """
    now = now or utcnow()
    links = links_of(session, transaction.id)
    answer = our_answer(session, transaction.authorization_id)
    first = derive(links, names_authorization=transaction.authorization_id is not None,
                   our_answer=answer, posting_statuses=(), expired=False)

    posted = failed = 0
    ledger_on: bool | None = None  # read once, and only when something is ready to post
    postings = postings_of(session, transaction.id)
    for posting in postings:
        if posting.status != PostingStatus.PARKED.value:
            continue
        if not _ready(posting, transaction, first, without_authorization):
            if posting.detail == SWITCHED_OFF:
                # Parked by the switch through an operator retry, but its authorization has
                # not come: it waits for it (and the orphan grace period) like any other.
                posting.detail = ""
            continue
        if ledger_on is None:
            ledger_on = is_enabled(session, Flow.LEDGER_POSTING)
        if not ledger_on:
            if posting.detail != SWITCHED_OFF:
                posting.detail = SWITCHED_OFF
                posting.updated_at = now
            continue
        if _post(session, posting, transaction, first, settings, now, posted_by):
            posted += 1
        else:
            failed += 1

    presentments = [p for p in postings if p.kind == Role.PRESENTMENT.value]
    derived = derive(links, names_authorization=transaction.authorization_id is not None,
                     our_answer=answer, posting_statuses=[p.status for p in presentments],
                     expired=transaction.expired_at is not None)
    hold = _reconcile_hold(session, transaction, derived, presentments, settings, now)
    _store(transaction, derived, postings, now)
    session.flush()
    return Settled(derived.state, posted=posted, failed=failed,
                   parked=sum(p.status == PostingStatus.PARKED.value for p in postings),
                   hold=hold)


def _ready(posting: TransactionPosting, transaction: CardTransaction, derived: Derived,
           without_authorization: bool) -> bool:
    if posting.kind == Role.REFUND.value or transaction.authorization_id is None:
        return True  # refunds credit the card whatever happened before; no hold to consult
    return derived.has_advice or without_authorization


def _store(transaction: CardTransaction, derived: Derived,
           postings: Sequence[TransactionPosting], now: dt.datetime) -> None:
    transaction.state = derived.state.value
    transaction.has_request = derived.has_request
    transaction.has_advice = derived.has_advice
    transaction.awaiting_authorization = derived.awaiting_authorization
    transaction.response_code = derived.response_code
    transaction.authorized_amount = derived.authorized
    transaction.reversed_amount = derived.reversed
    transaction.cleared_amount = derived.cleared
    transaction.refunded_amount = derived.refunded
    transaction.failed_postings = sum(p.status == PostingStatus.FAILED.value for p in postings)
    transaction.first_event_at = derived.first_event_at
    transaction.last_event_at = derived.last_event_at
    transaction.authorized_at = derived.authorized_at
    transaction.updated_at = now


# --- postings --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Refusal:
    reason: FailureReason
    detail: str


def _check(session: Session, posting: TransactionPosting, transaction: CardTransaction,
           derived: Derived, settings: LifecycleSettings
           ) -> tuple[LedgerAccount | None, Refusal | None]:
    card = (session.get(Card, transaction.card_id) if transaction.card_id else None) or (
        session.scalar(select(Card).where(Card.token_id == transaction.token_id))
        if transaction.token_id else None)
    if card is None:
        return None, Refusal(FailureReason.UNKNOWN_CARD,
                             f"no card with token {transaction.token_id or '(none)'}")
    transaction.card_id = card.id
    if card.account_id is None:
        return None, Refusal(FailureReason.UNKNOWN_ACCOUNT,
                             "the card is not linked to a ledger account")
    account = session.get(LedgerAccount, card.account_id)
    if account is None:
        return None, Refusal(FailureReason.UNKNOWN_ACCOUNT,
                             f"ledger account {card.account_id} does not exist")
    if account.closed_at is not None:
        return None, Refusal(FailureReason.ACCOUNT_CLOSED,
                             f"ledger account {account.id} is closed")
    if posting.currency != account.currency:
        return None, Refusal(FailureReason.CURRENCY_MISMATCH,
                             f"{posting.kind} in {posting.currency}, account in "
                             f"{account.currency}")
    if (posting.kind == Role.PRESENTMENT.value and transaction.authorization_id is not None
            and derived.has_advice and posting.accepted_by is None):
        limit = derived.authorized * (100 + settings.presentment_tolerance_pct)
        if posting.amount * 100 > limit:
            why = ("the authorization was declined" if derived.outcome is False else
                   f"authorized {derived.authorized}, tolerance "
                   f"{settings.presentment_tolerance_pct}%")
            return None, Refusal(FailureReason.OVER_HOLD,
                                 f"presented {posting.amount} {posting.currency}: {why}")
    return account, None


def _post(session: Session, posting: TransactionPosting, transaction: CardTransaction,
          derived: Derived, settings: LifecycleSettings, now: dt.datetime,
          posted_by: str) -> bool:
    posting.attempts += 1
    posting.updated_at = now
    if not settings.keeps_ledger:
        posting.status = PostingStatus.SKIPPED.value
        posting.detail = "the ledger is kept by FINCI for this program"
        return True
    if posting.amount == 0:
        posting.status = PostingStatus.SKIPPED.value
        posting.detail = "zero amount: nothing to post"
        return True
    account, refusal = _check(session, posting, transaction, derived, settings)
    if refusal is not None:
        posting.status = PostingStatus.FAILED.value
        posting.reason = refusal.reason.value
        posting.detail = refusal.detail[:300]
        count_event(session, POSTING_FAILURES, {"reason": refusal.reason.value}, now)
        log.warning("posting of %s %s failed: %s", posting.kind, posting.finci_id,
                    refusal.reason.value, extra={"transaction_id": transaction.id})
        return False
    assert account is not None  # noqa: S101 - no refusal means an account
    settlement = ledger.settlement_account(session, account.currency)
    if posting.kind == Role.PRESENTMENT.value:
        entries = [(account.id, -posting.amount), (settlement.id, posting.amount)]
    else:
        entries = [(settlement.id, -posting.amount), (account.id, posting.amount)]
    journal = ledger.post_journal(
        session, kind=posting.kind, reference=f"{posting.kind}:{posting.finci_id}",
        entries=entries, posted_by=posted_by, now=now,
        description=f"{posting.kind} {posting.finci_id}"[:200])
    posting.status = PostingStatus.POSTED.value
    posting.reason = None
    posting.journal_id = journal.id
    posting.posted_at = now
    posting.detail = ("posted without its authorization (grace period over)"
                      if posting.kind == Role.PRESENTMENT.value
                      and transaction.authorization_id is not None
                      and not derived.has_advice else "")
    return True


# --- the hold --------------------------------------------------------------------------------

def _reconcile_hold(session: Session, transaction: CardTransaction, derived: Derived,
                    presentments: Sequence[TransactionPosting], settings: LifecycleSettings,
                    now: dt.datetime) -> str | None:
    """Drive the authorization's open hold to what the messages say; None if nothing to do."""
    if not settings.keeps_ledger or transaction.authorization_id is None:
        return None
    authorization_id = transaction.authorization_id
    hold = ledger.hold_for(session, authorization_id)
    if hold is None or hold.status != HoldStatus.OPEN.value:
        return None
    posted = [p for p in presentments if p.status == PostingStatus.POSTED.value]
    if posted:
        ledger.convert_hold(session, authorization_id, posted[0].journal_id, now)
        return "converted"
    if derived.outcome is False:
        ledger.release_hold(session, authorization_id, ReleaseReason.ADVICE_DECLINED, now)
        return "released (declined)"
    if derived.authorized and derived.reversed >= derived.authorized:
        ledger.release_hold(session, authorization_id, ReleaseReason.REVERSAL, now)
        return "released (reversed)"
    if transaction.expired_at is not None:
        ledger.release_hold(session, authorization_id, ReleaseReason.EXPIRED, now)
        return "released (expired)"
    if derived.authorized:
        remaining = derived.authorized - derived.reversed
        if remaining != hold.amount:
            ledger.adjust_hold(session, authorization_id, remaining, now)
            return f"reduced to {remaining}"
    return None


# --- repair: retry and accept ----------------------------------------------------------------

class PostingNotFound(LookupError):
    pass


class RetryRefused(ValueError):
    pass


def lock_account_of(session: Session, token_id: str | None) -> None:
    """Lock the card's account row before the transaction row: the order decisioning and the
    advice take locks in (account first), so the worker, the expiry job and an operator retry
    can never wait on each other in opposite orders (no deadlock on PostgreSQL)."""
    if not token_id:
        return
    account_id = session.scalar(select(Card.account_id).where(Card.token_id == token_id))
    if account_id is not None:
        ledger.lock_account(session, account_id)


def lock_transaction(session: Session, transaction_id: int) -> CardTransaction | None:
    token_id = session.scalar(select(CardTransaction.token_id)
                              .where(CardTransaction.id == transaction_id))
    lock_account_of(session, token_id)
    return session.scalar(select(CardTransaction).where(CardTransaction.id == transaction_id)
                          .with_for_update().execution_options(populate_existing=True))


def retry_posting(session: Session, actor: Actor, posting_id: int,
                  settings: LifecycleSettings, *, accept_over_hold: bool = False,
                  now: dt.datetime | None = None) -> TransactionPosting:
    """Try a failed posting again after repair (audited). ``accept_over_hold`` is the operator
    saying the amount over the authorization is right (e.g. a confirmed tip)."""
    now = now or utcnow()
    posting = session.get(TransactionPosting, posting_id)
    if posting is None:
        raise PostingNotFound(posting_id)
    transaction = lock_transaction(session, posting.transaction_id)
    session.refresh(posting, with_for_update=True)
    if posting.status != PostingStatus.FAILED.value:
        raise RetryRefused(f"posting {posting.id} is {posting.status}, not failed")
    if accept_over_hold and posting.reason != FailureReason.OVER_HOLD.value:
        raise RetryRefused("only a posting over the hold can be accepted as is")
    before = {"status": posting.status, "reason": posting.reason}
    previous_reason = posting.reason
    posting.status = PostingStatus.PARKED.value
    posting.reason = None
    if accept_over_hold:
        posting.accepted_by = actor.id
    assert transaction is not None  # noqa: S101 - the posting's foreign key
    result = settle(session, transaction, settings, now=now, posted_by=actor.id,
                    without_authorization=True)
    record(session, actor=actor,
           action=(AuditAction.TRANSACTIONS_POSTING_ACCEPT if accept_over_hold
                   else AuditAction.TRANSACTIONS_POSTING_RETRY),
           target=Target("transaction_posting", str(posting.id)),
           outcome=Outcome.SUCCESS if posting.status == PostingStatus.POSTED.value
           else Outcome.FAILURE,
           details={"transaction_id": transaction.id, "kind": posting.kind,
                    "finci_id": posting.finci_id, "previous_reason": previous_reason,
                    "state": result.state.value},
           before=before, after={"status": posting.status, "reason": posting.reason}, at=now)
    return posting


def retry_failed(session: Session, actor: Actor, settings: LifecycleSettings, *,
                 limit: int = 200, now: dt.datetime | None = None) -> tuple[int, int]:
    """Retry postings that failed for a missing card or account once that cause is gone (a
    card refresh brought the card, an operator linked its account); ``(tried, posted)``.
    Postings still missing theirs are left alone, so a scheduled run audits only real work."""
    ids = session.scalars(
        select(TransactionPosting.id)
        .join(CardTransaction, CardTransaction.id == TransactionPosting.transaction_id)
        .join(Card, Card.token_id == CardTransaction.token_id)
        .where(TransactionPosting.status == PostingStatus.FAILED.value,
               TransactionPosting.reason.in_([FailureReason.UNKNOWN_CARD.value,
                                              FailureReason.UNKNOWN_ACCOUNT.value]),
               Card.account_id.is_not(None))
        .order_by(TransactionPosting.id).limit(limit)).all()
    posted = 0
    for posting_id in ids:
        posting = retry_posting(session, actor, posting_id, settings, now=now)
        posted += posting.status == PostingStatus.POSTED.value
    return len(ids), posted


def failed_postings(session: Session, limit: int = 200) -> list[tuple[TransactionPosting,
                                                                        CardTransaction]]:
    return [(posting, transaction) for posting, transaction in session.execute(
        select(TransactionPosting, CardTransaction)
        .join(CardTransaction, CardTransaction.id == TransactionPosting.transaction_id)
        .where(TransactionPosting.status == PostingStatus.FAILED.value)
        .order_by(TransactionPosting.updated_at.desc()).limit(limit))]


def failure_counts(session: Session) -> dict[str, int]:
    return {reason: count for reason, count in session.execute(
        select(TransactionPosting.reason, func.count())
        .where(TransactionPosting.status == PostingStatus.FAILED.value)
        .group_by(TransactionPosting.reason))}


def mark_expired(session: Session, transaction: CardTransaction, settings: LifecycleSettings,
                 now: dt.datetime) -> Settled:
    transaction.expired_at = now
    return settle(session, transaction, settings, now=now, posted_by="scheduler")
