"""The budget holds when the database stalls: a slow query or a lock held by someone else.

Assertions are on behaviour (the safe default, its recorded reason) with a generous upper bound
on time; precise latency figures belong to bench/decisioning.py.
"""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select, text

from console.db import Database, make_engine
from console.decisioning import services
from console.decisioning.models import DecisionRecord, Reason
from console.decisioning.services import decide
from console.ledger.models import Hold, LedgerAccount
from tests.decisioning.helpers import authorization, funded_card, settings

BUDGET = 0.5
# Generous: the point is "bounded by the budget", not a benchmark. Without the guard these
# stalls last 5 s (or forever).
MARGIN = 0.5


def _stall(connection) -> None:
    """decide() runs on the session's connection; this stalls it."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_sleep(5)"))
    else:
        # Never ends on its own: only an interrupt stops it.
        connection.execute(text("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
                             "SELECT count(*) FROM c"))


def test_a_stalled_query_is_cut_off_and_the_safe_default_answered_in_time(db_session,
                                                                          monkeypatch):
    funded_card(db_session, balance=10_000)
    usage = services._usage

    def stalled_usage(connection, *args):
        _stall(connection)
        return usage(connection, *args)

    monkeypatch.setattr(services, "_usage", stalled_usage)
    request = authorization(amount=100)
    started = time.monotonic()
    decision = decide(db_session, request, settings(budget_s=BUDGET))
    elapsed = time.monotonic() - started
    assert not decision.approve and decision.default_used
    assert decision.reason is Reason.BUDGET_EXCEEDED
    assert elapsed < BUDGET + MARGIN
    record = db_session.scalar(select(DecisionRecord)
                               .where(DecisionRecord.authorization_id == request.id))
    assert record.reason == "budget_exceeded" and "usage" in record.detail
    assert record.total_ms < (BUDGET + MARGIN) * 1000
    assert db_session.scalar(select(Hold)) is None


def test_the_session_is_usable_and_its_timeout_restored_after_a_cut_off(db_session,
                                                                        monkeypatch):
    postgres = db_session.get_bind().dialect.name == "postgresql"
    show = ("SHOW statement_timeout" if postgres else "PRAGMA busy_timeout")
    before = db_session.execute(text(show)).scalar()
    monkeypatch.setattr(services, "_usage", lambda connection, *_a: _stall(connection))
    funded_card(db_session)
    decide(db_session, authorization(), settings(budget_s=BUDGET))
    assert db_session.execute(text(show)).scalar() == before
    # The caller carries on in the same transaction.
    assert db_session.execute(text("SELECT 1")).scalar() == 1


@pytest.fixture
def locked_account(db_factory):
    """A fresh PostgreSQL database with a funded card whose account row another connection
    holds locked (FOR UPDATE) while the test runs."""
    if db_factory.backend != "postgresql":
        pytest.skip("row locks: PostgreSQL (SQLite writers hold the whole database)")
    database = Database(make_engine(db_factory.fresh()))
    with database.transaction() as session:
        account_id = funded_card(session, balance=10_000).account_id
    locked, release = threading.Event(), threading.Event()

    def hold_the_account_row():
        with database.transaction() as other:
            other.execute(select(LedgerAccount).where(LedgerAccount.id == account_id)
                          .with_for_update())
            locked.set()
            release.wait(10)

    holder = threading.Thread(target=hold_the_account_row)
    holder.start()
    assert locked.wait(5)
    try:
        yield database
    finally:
        release.set()
        holder.join()
        database.dispose()


def _decide_timed(database, request, **overrides):
    started = time.monotonic()
    with database.transaction() as session:
        decision = decide(session, request, settings(budget_s=BUDGET, **overrides))
    return decision, time.monotonic() - started


def _record(database, authorization_id):
    with database.transaction() as session:
        return session.scalar(select(DecisionRecord)
                              .where(DecisionRecord.authorization_id == authorization_id))


def test_a_lock_held_by_another_connection_cannot_hold_up_the_answer(locked_account):
    request = authorization(amount=100)
    decision, elapsed = _decide_timed(locked_account, request)
    assert not decision.approve and decision.reason is Reason.BUDGET_EXCEEDED
    assert elapsed < BUDGET + MARGIN
    record = _record(locked_account, request.id)
    assert record.default_used and "card" in record.detail
    with locked_account.transaction() as session:
        assert session.scalar(select(Hold)) is None


def test_with_the_kill_switch_off_a_declining_stand_in_does_not_wait_for_the_lock(
        locked_account):
    from console.audit import Actor
    from console.flows.services import Flow, set_flow

    with locked_account.transaction() as session:
        set_flow(session, Actor.cli("oncall"), Flow.DECISIONING, enabled=False,
                 reason="INC-1 database trouble")
    request = authorization(amount=100)
    decision, _elapsed = _decide_timed(locked_account, request)
    assert not decision.approve and decision.reason is Reason.KILL_SWITCH
    assert not decision.default_used
    assert _record(locked_account, request.id).reason == "kill_switch"
