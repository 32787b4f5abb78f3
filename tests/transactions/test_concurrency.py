"""Several workers at once on PostgreSQL (SKIP LOCKED claims, one message per transaction):
messages of one transaction processed side by side end as one run would, with no deadlock,
no dead letter and no second posting."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from console.cards.services import issue_funded_card
from console.db import Database, make_engine
from console.ingress.models import StoredMessage
from console.ledger.models import LedgerJournal
from console.pipeline import handlers
from console.pipeline.models import ProcessingAttempt
from console.pipeline.worker import Worker
from console.transactions.models import CardTransaction
from tests.transactions.support import PIPELINE, Bodies, Driver, assert_ledger_balanced, new_id

pytestmark = pytest.mark.postgres_only
TRANSACTIONS = 20


@pytest.fixture
def backend():
    return "postgresql"


def test_four_workers_process_interleaved_transactions_exactly_once(db_factory):
    database = Database(make_engine(db_factory.fresh(), pool_size=8))
    session = database.session()
    try:
        tokens = [new_id("tok") for _ in range(4)]
        for token in tokens:
            issue_funded_card(session, token_id=token, balance=10_000_000)
        session.commit()
        driver = Driver(database, session)
        # Stored in an order that puts each transaction's messages next to each other, so
        # workers claiming neighbouring messages contend for the same transaction and account.
        for n in range(TRANSACTIONS):
            bodies = Bodies(tokens[n % len(tokens)])
            auth = new_id("auth")
            for body in (bodies.request(auth, 5_000), bodies.presentment(auth, 3_000),
                         bodies.advice(auth, 5_000), bodies.reversal(auth, 2_000)):
                driver.deliver(body)
        handlers.load()
        settings = PIPELINE.__class__(**{**PIPELINE.__dict__, "batch_size": 3})
        workers = [Worker(database, settings, name=f"worker-{i}") for i in range(4)]
        threads = [threading.Thread(target=w.run, kwargs={"until_idle": True}) for w in workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        Worker(database, PIPELINE, name="sweeper").run(until_idle=True)  # retried backoffs

        session.expire_all()
        statuses = dict(session.execute(select(StoredMessage.status, func.count())
                                        .group_by(StoredMessage.status)).all())
        assert statuses == {"processed": TRANSACTIONS * 4}
        states = dict(session.execute(select(CardTransaction.state, func.count())
                                      .group_by(CardTransaction.state)).all())
        assert states == {"posted": TRANSACTIONS}
        assert session.scalar(select(func.count()).select_from(LedgerJournal)
                              .where(LedgerJournal.kind == "presentment")) == TRANSACTIONS
        failed = session.scalars(select(ProcessingAttempt.error)
                                 .where(ProcessingAttempt.outcome != "applied")).all()
        assert failed == []  # not even a retried deadlock
        assert_ledger_balanced(session)
    finally:
        session.close()
        database.dispose()


def test_two_first_postings_in_a_new_currency_share_one_settlement_account(db_factory):
    from console.ledger import services as ledger

    database = Database(make_engine(db_factory.fresh(), pool_size=4))
    first, second = database.session(), database.session()
    try:
        created = ledger.settlement_account(first, "CHF")  # not committed yet
        found = {}
        racer = threading.Thread(target=lambda: found.update(
            account=ledger.settlement_account(second, "CHF")))
        racer.start()  # blocks on the UNIQUE external_id until the first commits
        racer.join(timeout=0.5)
        first.commit()
        racer.join(timeout=10)
        assert found["account"].id == created.id
        second.commit()
    finally:
        first.close()
        second.close()
        database.dispose()
