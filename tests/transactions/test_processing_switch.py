"""Processing switched off, end to end (issue 12): a signed delivery is verified and stored, the
worker applies nothing; turned back on, the backlog is applied once, in order."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from console.audit import Actor
from console.flows.services import Flow, set_flow
from console.ingress.models import MessageStatus, StoredMessage
from console.ledger import services as ledger
from console.ledger.models import LedgerJournal
from console.pipeline import handlers
from console.pipeline.models import MessageEffect
from console.pipeline.worker import Worker
from console.transactions.models import TransactionPosting
from tests.conftest import make_settings
from tests.decisioning.helpers import funded_card
from tests.ingress.helpers import deliver, ingress_settings, message

INGRESS = ingress_settings()


@pytest.fixture
def settings(db_factory):
    return make_settings(db_factory.shared_url, ingress=INGRESS)


def test_switched_off_the_backlog_is_stored_then_applied_once_when_back_on(
        client, db_session, test_database):
    card = funded_card(db_session, token_id="tok_proc", balance=10_000)
    set_flow(db_session, Actor.system("oncall"), Flow.PROCESSING, enabled=False,
             reason="INC-30 bad handler release")
    db_session.commit()
    bodies = [message("presentment", token_id="tok_proc", amount=amount, currency="EUR")
              for amount in (1_000, 2_000)]
    for body in bodies:
        assert deliver(client, body).status_code == 200  # verified and stored while off
    handlers.load()
    worker = Worker(test_database, INGRESS, name="switch-test",
                    clock=lambda: dt.datetime.now(dt.UTC), rand=lambda: 1.0)
    report = worker.run_once()
    assert (report.claimed, report.paused) == (0, True)
    db_session.expire_all()
    stored = db_session.scalars(select(StoredMessage).order_by(StoredMessage.id)).all()
    assert [m.status for m in stored] == [MessageStatus.PENDING] * 2
    assert db_session.scalars(select(TransactionPosting)).all() == []

    set_flow(db_session, Actor.system("oncall"), Flow.PROCESSING, enabled=True, reason="fixed")
    db_session.commit()
    assert worker.run_once().applied == 2
    assert worker.run_once().claimed == 0  # applied once
    db_session.expire_all()
    assert [m.status for m in db_session.scalars(select(StoredMessage)
                                                 .order_by(StoredMessage.id))] == [
        MessageStatus.PROCESSED] * 2
    assert db_session.scalar(select(func.count()).select_from(MessageEffect)) == 2
    postings = db_session.scalars(select(TransactionPosting)
                                  .order_by(TransactionPosting.id)).all()
    assert [(p.finci_id, p.status) for p in postings] == [(b["id"], "posted") for b in bodies]
    assert db_session.scalar(select(func.count()).select_from(LedgerJournal)
                             .where(LedgerJournal.kind == "presentment")) == 2
    assert ledger.balance(db_session, card.account_id).posted == 7_000
