"""Concurrent repeats of one authorization, and concurrent authorizations on one account.

Each thread runs the unit of work the ingress runs: its own transaction, a write first (the
ingress stores the message before asking for a decision), decide, COMMIT.
"""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select, text

from console.db import Database, make_engine
from console.decisioning.models import DecisionRecord
from console.decisioning.services import decide
from console.ledger import services as ledger
from console.ledger.models import Hold
from tests.decisioning.helpers import authorization, funded_card, settings

THREADS = 12


@pytest.fixture
def database(db_factory):
    database = Database(make_engine(db_factory.fresh()))
    yield database
    database.dispose()


def _race(database, messages):
    barrier = threading.Barrier(len(messages))
    answers: list = [None] * len(messages)
    errors: list = []

    def run(index, message):
        try:
            barrier.wait(10)
            with database.transaction() as session:
                # Like the ingress: a write first, so SQLite gives us the write lock up front.
                session.execute(text("UPDATE card SET product_id = product_id WHERE id = -1"))
                answers[index] = decide(session, message, settings())
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, m)) for i, m in enumerate(messages)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    return answers


def test_concurrent_repeats_get_one_decision_and_one_hold(database):
    with database.transaction() as session:
        card = funded_card(session, balance=10_000)
    request = authorization(amount=4_000)
    answers = _race(database, [request] * THREADS)
    assert all(a.approve for a in answers)
    assert sum(1 for a in answers if not a.repeated) == 1
    assert len({a.record_id for a in answers}) == 1
    with database.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Hold)) == 1
        assert session.scalar(select(func.count()).select_from(DecisionRecord)) == 1
        assert ledger.balance(session, card.account_id).held == 4_000
        assert ledger.verify_balances(session) == []


def test_concurrent_authorizations_never_spend_the_same_money_twice(database):
    with database.transaction() as session:
        card = funded_card(session, balance=5_000)
    answers = _race(database, [authorization(amount=1_000) for _ in range(THREADS)])
    assert sum(1 for a in answers if a.approve) == 5
    assert not any(a.default_used for a in answers)
    with database.transaction() as session:
        balance = ledger.balance(session, card.account_id)
        assert (balance.held, balance.available) == (5_000, 0)
        assert session.scalar(select(func.count()).select_from(Hold)) == 5
        assert ledger.verify_balances(session) == []
