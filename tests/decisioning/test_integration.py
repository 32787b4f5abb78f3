"""End to end: FINCI delivers through the real ingress, the worker applies the advice."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest
from sqlalchemy import select, text

from console.decisioning import services
from console.decisioning.advice import apply_advice
from console.decisioning.models import DecisionRecord
from console.decisioning.settings import DecisioningSettings
from console.finci.payload import parse_message
from console.ingress.models import StoredMessage
from console.ledger import services as ledger
from console.ledger.models import Hold
from console.pipeline.models import MessageEffect
from console.pipeline.worker import Worker
from tests.conftest import make_settings
from tests.decisioning.helpers import funded_card, sent_now
from tests.ingress.helpers import deliver, ingress_settings, new_webhook_id

INGRESS = ingress_settings()


@pytest.fixture
def settings(db_factory):
    return make_settings(db_factory.shared_url, ingress=INGRESS)


@pytest.fixture
def card(db_session):
    card = funded_card(db_session, balance=10_000)
    db_session.commit()
    return card


@pytest.fixture
def worker(test_database):
    return Worker(test_database, INGRESS, name="worker-test",
                  clock=lambda: dt.datetime.now(dt.UTC), rand=lambda: 1.0)


def stored(db_session, finci_id, advice) -> StoredMessage:
    db_session.expire_all()
    return db_session.scalar(select(StoredMessage).where(StoredMessage.finci_id == finci_id,
                                                         StoredMessage.advice.is_(advice)))


def test_a_request_is_answered_from_our_rules_and_stored_with_its_decision(client, card,
                                                                           db_session):
    body = sent_now(amount=2_000)
    response = deliver(client, body)
    assert response.status_code == 200 and response.get_json() == {"status": "success"}
    message = stored(db_session, body["id"], False)
    assert (message.decision, message.decision_reason) == ("success", "approved")
    assert ledger.balance(db_session, card.account_id).available == 8_000
    declined = sent_now(amount=50_000)
    response = deliver(client, declined)
    assert response.get_json() == {"status": "error"}
    assert stored(db_session, declined["id"], False).decision_reason == "insufficient_funds"


def test_a_redelivered_request_gets_the_same_answer_and_no_second_hold(client, card,
                                                                       db_session):
    body = sent_now(amount=6_000)
    webhook_id = new_webhook_id()
    first = deliver(client, body, webhook_id=webhook_id)
    again = deliver(client, body, webhook_id=webhook_id)
    other_id = deliver(client, body)  # same business key under another webhook-id
    assert first.get_json() == again.get_json() == other_id.get_json() == {"status": "success"}
    assert len(db_session.scalars(select(Hold)).all()) == 1
    assert ledger.balance(db_session, card.account_id).held == 6_000


def test_the_advice_is_applied_by_the_worker_and_releases_a_declined_hold(client, card,
                                                                          db_session, worker):
    body = sent_now(amount=2_000)
    deliver(client, body)
    advice = dict(body, advice=True, response_code="InsufficientFunds")
    assert deliver(client, advice).status_code == 200
    report = worker.run_once()
    assert report.applied == 2  # the request (noted) and the advice (applied)
    db_session.expire_all()
    record = db_session.scalar(select(DecisionRecord)
                               .where(DecisionRecord.authorization_id == body["id"]))
    assert (record.advice_outcome, record.hold_action) == ("finci_declined", "released")
    assert ledger.balance(db_session, card.account_id).held == 0
    effect = db_session.get(MessageEffect, stored(db_session, body["id"], True).id)
    assert effect.handler == "decisioning.authorization"
    assert effect.summary == "advice finci_declined, hold released"
    # Replaying the advice changes nothing.
    again = apply_advice(db_session, parse_message(json.dumps(advice).encode()),
                         DecisioningSettings())
    assert again.already_applied and ledger.balance(db_session, card.account_id).held == 0


def test_a_stalled_database_still_answers_in_time_through_the_ingress(client, card, db_session,
                                                                      monkeypatch, app):
    settings = app.extensions["settings"]
    app.extensions["settings"] = settings.replace(decisioning=DecisioningSettings(budget_s=0.5))

    def stalled(connection, *_args):
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_sleep(5)"))
        else:
            connection.execute(text("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 "
                                 "FROM c) SELECT count(*) FROM c"))

    monkeypatch.setattr(services, "_usage", stalled)
    body = sent_now(amount=100)
    started = time.monotonic()
    response = deliver(client, body)
    elapsed = time.monotonic() - started
    assert response.get_json() == {"status": "error"}
    assert elapsed < 1.0  # budget 0.5 s, plus a generous margin for the ingress's own work
    message = stored(db_session, body["id"], False)
    assert message.decision_reason == "budget_exceeded (safe default)"
    assert db_session.scalar(select(Hold)) is None


def test_a_decision_links_the_request_and_advice_messages_fincis_sent(client, card, db_session,
                                                                       worker, as_viewer):
    body = sent_now(amount=2_000)
    deliver(client, body)
    deliver(client, dict(body, advice=True, response_code="Approved"))
    worker.run_once()
    db_session.expire_all()
    record = db_session.scalar(select(DecisionRecord)
                               .where(DecisionRecord.authorization_id == body["id"]))
    request_message = stored(db_session, body["id"], False)
    advice_message = stored(db_session, body["id"], True)
    assert record.advice_message_id == advice_message.id
    html = as_viewer.get(f"/decisions/{record.id}").get_data(as_text=True)
    assert (f'href="/pipeline/messages/{request_message.id}" '
            'data-testid="decision-request-message"') in html
    assert (f'href="/pipeline/messages/{advice_message.id}" '
            'data-testid="decision-advice-message"') in html
