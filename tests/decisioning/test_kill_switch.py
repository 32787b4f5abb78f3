"""End to end through the signed ingress: decisioning switched off answers the stand-in at once,
without evaluating rules, recorded as kill_switch; an optional small cap approves (and holds)
what is under it and declines the rest."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from console.audit import Actor
from console.decisioning.models import DecisionRecord
from console.decisioning.settings import AnswerStatus, DecisioningSettings
from console.flows.services import Flow, set_flow
from console.ledger import services as ledger
from console.ledger.models import Hold
from tests.conftest import make_settings
from tests.decisioning.helpers import funded_card, sent_now
from tests.ingress.helpers import deliver, ingress_settings

INGRESS = ingress_settings()
CAPPED = DecisioningSettings(stand_in_approve_up_to=500, stand_in_currency="EUR")


@pytest.fixture
def settings(db_factory):
    return make_settings(db_factory.shared_url, ingress=INGRESS)


@pytest.fixture
def card(db_session):
    # 100 in the account: our rules would decline anything above it (insufficient funds).
    card = funded_card(db_session, balance=100)
    set_flow(db_session, Actor.system("test"), Flow.DECISIONING, enabled=False,
             reason="INC-12 rules misbehaving")
    db_session.commit()
    return card


def record_of(db_session, authorization_id) -> DecisionRecord:
    db_session.expire_all()
    return db_session.scalar(select(DecisionRecord)
                             .where(DecisionRecord.authorization_id == authorization_id))


def test_switched_off_every_request_gets_the_decline_stand_in_without_rules(client, card,
                                                                           db_session):
    body = sent_now(amount=50)  # our rules would approve this one
    started = time.monotonic()
    response = deliver(client, body)
    elapsed = time.monotonic() - started
    assert response.status_code == 200 and response.get_json() == {"status": "error"}
    assert elapsed < 0.5
    record = record_of(db_session, body["id"])
    assert (record.answer, record.reason) == ("error", "kill_switch")
    assert [step["rule"] for step in record.rule_trace] == ["kill_switch"]  # no rule ran
    assert db_session.scalars(select(Hold)).all() == []


def test_a_capped_stand_in_approves_under_the_cap_with_a_hold_and_declines_above(
        client, card, db_session, app):
    app.extensions["settings"] = app.extensions["settings"].replace(decisioning=CAPPED)
    under = sent_now(amount=400)  # above the balance: insufficient funds, had rules run
    started = time.monotonic()
    assert deliver(client, under).get_json() == {"status": "success"}
    assert time.monotonic() - started < 0.5
    record = record_of(db_session, under["id"])
    assert (record.answer, record.reason) == ("success", "kill_switch")
    assert [step["rule"] for step in record.rule_trace] == ["kill_switch"]
    assert "stand-in approves up to 500 EUR" in record.detail
    hold = db_session.scalar(select(Hold).where(Hold.authorization_id == under["id"]))
    assert (hold.amount, hold.source) == (400, "stand_in")
    assert ledger.balance(db_session, card.account_id).held == 400

    at_cap = sent_now(amount=500)
    assert deliver(client, at_cap).get_json() == {"status": "success"}
    over = sent_now(amount=501)
    assert deliver(client, over).get_json() == {"status": "error"}
    assert record_of(db_session, over["id"]).reason == "kill_switch"
    other_currency = sent_now(amount=100, currency="USD")
    assert deliver(client, other_currency).get_json() == {"status": "error"}
    assert ledger.balance(db_session, card.account_id).held == 900  # the two approvals only


def test_a_capped_stand_in_declines_when_the_account_is_in_another_currency(
        client, db_session, app):
    funded_card(db_session, balance=10_000, currency="USD")
    set_flow(db_session, Actor.system("test"), Flow.DECISIONING, enabled=False, reason="INC-12")
    db_session.commit()
    app.extensions["settings"] = app.extensions["settings"].replace(decisioning=CAPPED)
    body = sent_now(amount=100)
    assert deliver(client, body).get_json() == {"status": "error"}
    record = record_of(db_session, body["id"])
    assert record.reason == "kill_switch" and "no account in the request's currency" in (
        record.detail)
    assert db_session.scalars(select(Hold)).all() == []


def test_turned_back_on_our_rules_answer_again(client, card, db_session, app):
    app.extensions["settings"] = app.extensions["settings"].replace(decisioning=CAPPED)
    set_flow(db_session, Actor.system("test"), Flow.DECISIONING, enabled=True, reason="fixed")
    db_session.commit()
    body = sent_now(amount=400)
    assert deliver(client, body).get_json() == {"status": "error"}
    assert record_of(db_session, body["id"]).reason == "insufficient_funds"


def test_the_stand_in_answer_follows_the_cap():
    assert CAPPED.stand_in_answer(500, "EUR") is AnswerStatus.SUCCESS
    assert CAPPED.stand_in_answer(501, "EUR") is AnswerStatus.ERROR
    assert CAPPED.stand_in_answer(None, "EUR") is AnswerStatus.ERROR
    assert CAPPED.stand_in_answer(-1, "EUR") is AnswerStatus.ERROR
    assert CAPPED.stand_in_answer(100, "USD") is AnswerStatus.ERROR
    assert DecisioningSettings().stand_in_answer(1, "EUR") is AnswerStatus.ERROR
