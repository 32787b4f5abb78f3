"""Spend limits see money that left without a hold: presentments posted with no counting hold
(force posts, or clearing after the hold was released) count when they post; presentments that
converted a hold are already counted by it."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from console.audit import Actor
from console.cards.services import issue_funded_card
from console.decisioning.config import save_config
from console.decisioning.models import DecisionRecord
from console.finci import contract
from console.ledger import services as ledger
from console.transactions.spend import unheld_spend_since
from tests.transactions.support import Bodies, new_id

ADMIN = Actor.cli("admin-ada")


def _spend(session, since, **scope) -> int:
    session.expire_all()
    return session.scalar(select(ledger.spend_since(since, **scope))) + session.scalar(
        select(unheld_spend_since(since, **scope)))


def _start_of_today() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def test_a_force_posted_presentment_counts_once_for_its_card_and_account(driver, bodies, card,
                                                                         db_session):
    today = _start_of_today()
    driver.run(bodies.presentment(None, 1_200))
    assert _spend(db_session, today, card_id=card.id) == 1_200
    assert _spend(db_session, today, account_id=card.account_id) == 1_200
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    assert _spend(db_session, later, card_id=card.id) == 0  # outside the window


def test_a_presentment_that_converted_a_hold_is_not_counted_twice(driver, bodies, card,
                                                                  db_session):
    today = _start_of_today()
    driver.run(bodies.request("auth_held", 2_000), bodies.advice("auth_held", 2_000),
               bodies.presentment("auth_held", 2_000))
    assert driver.transaction("auth_held").state == "posted"
    assert _spend(db_session, today, card_id=card.id) == 2_000
    assert _spend(db_session, today, account_id=card.account_id) == 2_000


def test_clearing_after_the_hold_was_reversed_counts_when_it_posts(driver, bodies, card,
                                                                   db_session):
    today = _start_of_today()
    driver.run(bodies.request("auth_rev", 1_000), bodies.advice("auth_rev", 1_000),
               bodies.reversal("auth_rev", 1_000))
    assert _spend(db_session, today, card_id=card.id) == 0
    driver.run(bodies.presentment("auth_rev", 1_000))
    assert _spend(db_session, today, card_id=card.id) == 1_000


def test_other_cards_and_failed_postings_do_not_count(driver, bodies, card, db_session):
    today = _start_of_today()
    other = issue_funded_card(db_session, token_id=new_id("tok"), currency="EUR", balance=500)
    driver.run(Bodies(other.token_id).presentment(None, 300),
               Bodies(new_id("tok")).presentment(None, 700))  # unknown card: a failed posting
    assert _spend(db_session, today, card_id=card.id) == 0
    assert _spend(db_session, today, account_id=card.account_id) == 0
    assert _spend(db_session, today, card_id=other.id) == 300


def test_the_daily_limit_declines_after_a_force_post_used_it_up(driver, bodies, card,
                                                                db_session):
    save_config(db_session, ADMIN, {"limits": [
        {"scope": "card", "period": "day", "currency": "EUR", "max_amount": 5_000}]},
        reason="daily limit")
    db_session.commit()
    driver.run(bodies.presentment(None, 4_500))
    over = driver.deliver(bodies.request("auth_over", 1_000))
    assert over.body == contract.AUTHORIZATION_DECLINE_BODY
    record = db_session.scalar(select(DecisionRecord)
                               .where(DecisionRecord.authorization_id == "auth_over"))
    assert (record.reason, "limit.card.day" in record.detail) == ("limit_exceeded", True)
    within = driver.deliver(bodies.request("auth_within", 500))
    assert within.body == contract.AUTHORIZATION_APPROVE_BODY
