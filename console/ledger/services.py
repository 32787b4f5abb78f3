"""Ledger services: holds, balanced postings, balances. Callers own the transaction.

Concurrency: every change to an account's totals is a single ``UPDATE … SET x = x + :delta`` on
the account row, so it takes the row lock and never loses an update; callers that must read a
balance and then decide (authorization) lock the row first (``lock_account``). Holds are unique
per authorization id, journals per reference: a retried or replayed message cannot place a
second hold or post twice, whatever the timing.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from console.db import utcnow
from console.ledger.models import (
    AccountKind,
    Hold,
    HoldSource,
    HoldStatus,
    LedgerAccount,
    LedgerEntry,
    LedgerJournal,
    ReleaseReason,
)


class LedgerError(ValueError):
    """A posting or hold that would break the ledger's rules (unbalanced, wrong currency)."""


@dataclass(frozen=True)
class Balance:
    account_id: int
    currency: str
    posted: int
    held: int

    @property
    def available(self) -> int:
        return self.posted - self.held


@dataclass(frozen=True)
class ReleasedHold:
    hold_id: int
    account_id: int
    amount: int
    currency: str


# --- accounts ---------------------------------------------------------------------------------

def open_account(session: Session, *, kind: AccountKind, name: str, currency: str,
                 external_id: str | None = None) -> LedgerAccount:
    account = LedgerAccount(kind=AccountKind(kind).value, name=name, currency=currency,
                            external_id=external_id, posted_balance=0, held_amount=0)
    session.add(account)
    session.flush()
    return account


def program_account(session: Session, kind: AccountKind, currency: str) -> LedgerAccount:
    """The program's own account of ``kind`` in ``currency`` (created on first use)."""
    kind = AccountKind(kind)
    external_id = f"{kind.value}:{currency}"
    query = select(LedgerAccount).where(LedgerAccount.external_id == external_id)
    account = session.scalar(query)
    if account is None:
        try:
            # Two first postings in a new currency may race to create it: the loser waits on
            # the UNIQUE external_id, rolls back its SAVEPOINT and uses the winner's account.
            with session.begin_nested():
                account = open_account(session, kind=kind,
                                       name=f"{kind.value.title()} {currency}",
                                       currency=currency, external_id=external_id)
        except IntegrityError:
            account = session.scalar(query)
    return account


def funding_account(session: Session, currency: str) -> LedgerAccount:
    """The program's funding source in ``currency`` (created on first use)."""
    return program_account(session, AccountKind.FUNDING, currency)


def settlement_account(session: Session, currency: str) -> LedgerAccount:
    """What the program owes FINCI / the scheme for cleared transactions, in ``currency``."""
    return program_account(session, AccountKind.SETTLEMENT, currency)


def close_account(session: Session, account_id: int, now: dt.datetime | None = None) -> bool:
    """Stop new postings to the account (existing holds and entries stay); False if unknown."""
    now = now or utcnow()
    return session.execute(update(LedgerAccount).where(LedgerAccount.id == account_id)
                           .values(closed_at=now, updated_at=now)).rowcount == 1


def reopen_account(session: Session, account_id: int, now: dt.datetime | None = None) -> bool:
    now = now or utcnow()
    return session.execute(update(LedgerAccount).where(LedgerAccount.id == account_id)
                           .values(closed_at=None, updated_at=now)).rowcount == 1


def lock_account(session: Session, account_id: int) -> LedgerAccount | None:
    return session.scalar(select(LedgerAccount).where(LedgerAccount.id == account_id)
                          .with_for_update())


def balance(session: Session, account_id: int) -> Balance | None:
    row = session.execute(select(LedgerAccount.currency, LedgerAccount.posted_balance,
                                 LedgerAccount.held_amount)
                          .where(LedgerAccount.id == account_id)).one_or_none()
    if row is None:
        return None
    return Balance(account_id, row.currency, row.posted_balance, row.held_amount)


# --- holds ------------------------------------------------------------------------------------

_ACCOUNTS = LedgerAccount.__table__
_HOLDS = Hold.__table__


def _param(name: str, column) -> object:
    return bindparam(name, type_=column.type)


# Prebuilt: the authorization hot path places a hold on most requests.
_RESERVE = (update(_ACCOUNTS)
            .where(_ACCOUNTS.c.id == _param("b_account", _ACCOUNTS.c.id),
                   _ACCOUNTS.c.currency == _param("b_currency", _ACCOUNTS.c.currency))
            .values(held_amount=_ACCOUNTS.c.held_amount + _param("b_amount", _HOLDS.c.amount),
                    updated_at=_param("b_now", _ACCOUNTS.c.updated_at)))
_INSERT_HOLD = insert(_HOLDS).returning(_HOLDS.c.id)
# PostgreSQL: both in one round trip. The hold is inserted only if the account row was updated
# (right id and currency), and a failing insert (UNIQUE) undoes the update with it.
_RESERVED = _RESERVE.returning(_ACCOUNTS.c.id).cte("reserved")
_RESERVE_AND_HOLD = (
    insert(_HOLDS).from_select(
        ["authorization_id", "account_id", "card_id", "amount", "currency", "status", "source",
         "placed_at", "expires_at"],
        select(_param("authorization_id", _HOLDS.c.authorization_id), _RESERVED.c.id,
               _param("card_id", _HOLDS.c.card_id), _param("b_amount", _HOLDS.c.amount),
               _param("b_currency", _HOLDS.c.currency), _param("status", _HOLDS.c.status),
               _param("source", _HOLDS.c.source), _param("b_now", _HOLDS.c.placed_at),
               _param("expires_at", _HOLDS.c.expires_at)).select_from(_RESERVED))
    .add_cte(_RESERVED)
    .returning(_HOLDS.c.id))


def place_hold(session: Session | Connection, *, authorization_id: str, account_id: int,
               card_id: int, amount: int, currency: str, source: HoldSource,
               expires_at: dt.datetime, now: dt.datetime | None = None) -> int:
    """Reserve ``amount`` on the account for one authorization; returns the hold id.

    A second hold for the same authorization fails on the UNIQUE constraint (IntegrityError):
    callers that may race catch it inside a SAVEPOINT. The currency must be the account's.
    Core statements: ORM objects of the account already loaded in a session are not refreshed.
    """
    if amount < 0:
        raise LedgerError("a hold cannot be negative")
    now = now or utcnow()
    params = {"authorization_id": authorization_id, "b_account": account_id,
              "card_id": card_id, "b_amount": amount, "b_currency": currency,
              "status": HoldStatus.OPEN.value, "source": HoldSource(source).value,
              "b_now": now, "expires_at": expires_at}
    if _dialect(session) == "postgresql":
        hold_id = session.execute(_RESERVE_AND_HOLD, params).scalar_one_or_none()
        if hold_id is None:
            raise LedgerError("no such account in this currency")
        return hold_id
    if session.execute(_RESERVE, params).rowcount != 1:
        raise LedgerError("no such account in this currency")
    return session.execute(_INSERT_HOLD, {
        "authorization_id": authorization_id, "account_id": account_id, "card_id": card_id,
        "amount": amount, "currency": currency, "status": HoldStatus.OPEN.value,
        "source": HoldSource(source).value, "placed_at": now, "expires_at": expires_at,
    }).scalar_one()


def _dialect(session: Session | Connection) -> str:
    bind = session.get_bind() if isinstance(session, Session) else session
    return bind.dialect.name


def release_hold(session: Session, authorization_id: str, reason: ReleaseReason,
                 now: dt.datetime | None = None) -> ReleasedHold | None:
    """Release the open hold of one authorization; None if there is none open (idempotent)."""
    now = now or utcnow()
    row = session.execute(
        update(Hold)
        .where(Hold.authorization_id == authorization_id, Hold.status == HoldStatus.OPEN.value)
        .values(status=HoldStatus.RELEASED.value, released_at=now,
                release_reason=ReleaseReason(reason).value)
        .returning(Hold.id, Hold.account_id, Hold.amount, Hold.currency)
    ).one_or_none()
    if row is None:
        return None
    session.execute(update(LedgerAccount).where(LedgerAccount.id == row.account_id)
                    .values(held_amount=LedgerAccount.held_amount - row.amount, updated_at=now))
    return ReleasedHold(row.id, row.account_id, row.amount, row.currency)


def adjust_hold(session: Session, authorization_id: str, amount: int,
                now: dt.datetime | None = None) -> int | None:
    """Set an open hold to ``amount`` (the advice's amount is the truth); returns the delta."""
    if amount < 0:
        raise LedgerError("a hold cannot be negative")
    now = now or utcnow()
    hold = session.execute(select(Hold.id, Hold.account_id, Hold.amount)
                           .where(Hold.authorization_id == authorization_id,
                                  Hold.status == HoldStatus.OPEN.value)
                           .with_for_update()).one_or_none()
    if hold is None:
        return None
    delta = amount - hold.amount
    if delta:
        session.execute(update(Hold).where(Hold.id == hold.id).values(amount=amount))
        session.execute(update(LedgerAccount).where(LedgerAccount.id == hold.account_id)
                        .values(held_amount=LedgerAccount.held_amount + delta, updated_at=now))
    return delta


def convert_hold(session: Session, authorization_id: str, journal_id: int,
                 now: dt.datetime | None = None) -> ReleasedHold | None:
    """Clearing (issue #6): the hold stops reserving funds because ``journal_id`` posted them."""
    now = now or utcnow()
    row = session.execute(
        update(Hold)
        .where(Hold.authorization_id == authorization_id, Hold.status == HoldStatus.OPEN.value)
        .values(status=HoldStatus.CONVERTED.value, converted_at=now,
                converted_journal_id=journal_id)
        .returning(Hold.id, Hold.account_id, Hold.amount, Hold.currency)
    ).one_or_none()
    if row is None:
        return None
    session.execute(update(LedgerAccount).where(LedgerAccount.id == row.account_id)
                    .values(held_amount=LedgerAccount.held_amount - row.amount, updated_at=now))
    return ReleasedHold(row.id, row.account_id, row.amount, row.currency)


def hold_for(session: Session, authorization_id: str) -> Hold | None:
    return session.scalar(select(Hold).where(Hold.authorization_id == authorization_id))


def release_expired_holds(session: Session, now: dt.datetime | None = None,
                          limit: int = 500) -> list[ReleasedHold]:
    """Release open holds past their expiry (a scheduler job); the last line against orphans."""
    now = now or utcnow()
    due = session.scalars(select(Hold.authorization_id)
                          .where(Hold.status == HoldStatus.OPEN.value, Hold.expires_at <= now)
                          .order_by(Hold.expires_at).limit(limit)).all()
    released = []
    for authorization_id in due:
        hold = release_hold(session, authorization_id, ReleaseReason.EXPIRED, now)
        if hold is not None:
            released.append(hold)
    return released


def spend_since(since: dt.datetime, *, card_id: int | None = None,
                account_id: int | None = None):
    """A scalar subquery: amount reserved or cleared since ``since`` for a card or an account.

    Released holds do not count (the money did not move). Presentments posted with no counting
    hold are added by ``console.transactions.spend`` (decisioning sums both).
    """
    query = select(func.coalesce(func.sum(Hold.amount), 0)).where(
        Hold.placed_at >= since, Hold.status != HoldStatus.RELEASED.value)
    if card_id is not None:
        query = query.where(Hold.card_id == card_id)
    if account_id is not None:
        query = query.where(Hold.account_id == account_id)
    return query.scalar_subquery()


# --- postings ---------------------------------------------------------------------------------

def post_journal(session: Session, *, kind: str, reference: str,
                 entries: Sequence[tuple[int, int]], posted_by: str, description: str = "",
                 now: dt.datetime | None = None) -> LedgerJournal:
    """Post balanced entries ``(account_id, signed amount)``; idempotent by ``reference``.

    The entries must sum to zero per currency, each in its account's currency. Accounts are
    locked in id order, so concurrent postings touching the same accounts cannot deadlock.
    """
    existing = session.scalar(select(LedgerJournal).where(LedgerJournal.reference == reference))
    if existing is not None:
        return existing
    if len(entries) < 2 or any(amount == 0 for _, amount in entries):
        raise LedgerError("a journal needs at least two non-zero entries")
    now = now or utcnow()
    ids = sorted({account_id for account_id, _ in entries})
    accounts = {a.id: a for a in session.scalars(
        select(LedgerAccount).where(LedgerAccount.id.in_(ids)).order_by(LedgerAccount.id)
        .with_for_update())}
    if len(accounts) != len(ids):
        raise LedgerError("unknown account in journal")
    totals: dict[str, int] = defaultdict(int)
    for account_id, amount in entries:
        totals[accounts[account_id].currency] += amount
    if any(totals.values()):
        raise LedgerError("entries do not balance")
    journal = LedgerJournal(kind=kind, reference=reference, description=description,
                            posted_at=now, posted_by=posted_by)
    session.add(journal)
    session.flush()
    session.execute(insert(LedgerEntry), [
        {"journal_id": journal.id, "account_id": account_id, "amount": amount,
         "currency": accounts[account_id].currency} for account_id, amount in entries])
    for account_id, amount in entries:
        session.execute(update(LedgerAccount).where(LedgerAccount.id == account_id).values(
            posted_balance=LedgerAccount.posted_balance + amount, updated_at=now))
    return journal


def fund(session: Session, account_id: int, amount: int, *, reference: str, posted_by: str,
         now: dt.datetime | None = None) -> LedgerJournal:
    """Load ``amount`` onto a customer account from the program's funding account."""
    account = session.get(LedgerAccount, account_id)
    if account is None:
        raise LedgerError("unknown account")
    source = funding_account(session, account.currency)
    return post_journal(session, kind="funding", reference=reference, posted_by=posted_by,
                        entries=[(source.id, -amount), (account.id, amount)],
                        description="load", now=now)


# --- verification -----------------------------------------------------------------------------

@dataclass(frozen=True)
class BalanceMismatch:
    account_id: int
    field: str
    recorded: int
    computed: int


def verify_balances(session: Session) -> list[BalanceMismatch]:
    """Recompute every account's totals from entries and open holds; list what disagrees."""
    posted = {account_id: total for account_id, total in session.execute(
        select(LedgerEntry.account_id, func.sum(LedgerEntry.amount))
        .group_by(LedgerEntry.account_id))}
    held = {account_id: total for account_id, total in session.execute(
        select(Hold.account_id, func.sum(Hold.amount))
        .where(Hold.status == HoldStatus.OPEN.value).group_by(Hold.account_id))}
    problems = []
    for account in session.execute(select(LedgerAccount.id, LedgerAccount.posted_balance,
                                          LedgerAccount.held_amount)):
        if account.posted_balance != (posted.get(account.id) or 0):
            problems.append(BalanceMismatch(account.id, "posted_balance", account.posted_balance,
                                            posted.get(account.id) or 0))
        if account.held_amount != (held.get(account.id) or 0):
            problems.append(BalanceMismatch(account.id, "held_amount", account.held_amount,
                                            held.get(account.id) or 0))
    for journal_id, in session.execute(
            select(LedgerEntry.journal_id).group_by(LedgerEntry.journal_id, LedgerEntry.currency)
            .having(func.sum(LedgerEntry.amount) != 0)):
        problems.append(BalanceMismatch(journal_id, "journal_unbalanced", 0, 0))
    return problems
