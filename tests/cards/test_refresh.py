"""The local card view: refreshed from get-cards, and status reports applied newest-first."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace

from sqlalchemy import select

from console.audit import Actor
from console.audit.models import AuditEvent
from console.cards import actions
from console.cards.models import Card, CardStatusChange, StatusSource
from console.cards.refresh import apply_status_report, refresh_cards, status_history
from console.cards.services import create_card
from console.simulator.card_api_server import CardApiServer, Faults
from console.transactions.settings import LifecycleSettings
from tests.cards.conftest import API_SECRET, API_TOKEN
from tests.transactions.support import T0, Bodies, Driver

SCHEDULER = Actor.system("scheduler")


def refresh(test_database, settings):
    return refresh_cards(test_database.transaction,
                         actions.card_api_client(settings, sleep=lambda _s: None), settings,
                         SCHEDULER)


def test_refresh_adds_new_cards_of_known_owners_and_updates_known_ones(
        test_database, db_session, card, book, lifecycle):
    settings = replace(lifecycle, product_currencies={"prod_prepaid_gbp": "GBP"})
    report = refresh(test_database, settings)
    assert (report.owners, report.seen, report.created, report.updated) == (1, 2, 1, 1)
    db_session.expire_all()
    cards = {c.token_id: c for c in db_session.scalars(
        select(Card).where(Card.person_id == "100001"))}
    [new] = [c for t, c in cards.items() if t != card.token_id]
    # get-cards carries no status: a new card cannot transact until FINCI reports it active.
    assert (new.status, new.currency, new.masked_number, new.account_id) == (
        "new", "GBP", "5454-54**-****-9876", None)
    assert cards[card.token_id].refreshed_at is not None
    [event] = db_session.scalars(select(AuditEvent)
                                 .where(AuditEvent.action == "cards.book.refresh")).all()
    assert json.loads(event.details)["created"] == 1


def test_owners_that_fail_are_reported_and_the_rest_still_refresh(
        test_database, db_session, card, book):
    with CardApiServer(book, API_TOKEN, API_SECRET, faults=Faults(error_rate=1.0)) as broken:
        settings = LifecycleSettings(api_base_url=broken.url, api_token=API_TOKEN,
                                     api_secret=API_SECRET)
        report = refresh(test_database, settings)
    assert report.failed_owners == ["person:100001"] and report.seen == 0
    db_session.expire_all()
    event = db_session.scalar(select(AuditEvent).where(AuditEvent.action == "cards.book.refresh"))
    assert event.outcome == "failure"


def test_status_reports_apply_newest_first_whatever_the_arrival_order(db_session, card):
    def report(status, seconds):
        return apply_status_report(db_session, token_id=card.token_id, status=status, stage=None,
                                   occurred_at=T0 + dt.timedelta(seconds=seconds),
                                   source=StatusSource.WEBHOOK)

    assert report("deactivated", 10).applied
    assert not report("active", 5).applied  # older than what the card shows: recorded only
    assert db_session.get(Card, card.id).status == "deactivated"
    assert report("active", 20).applied
    assert [c.to_status for c in status_history(db_session, card.token_id)] == [
        "active", "deactivated", "active"]


def test_a_report_outside_the_model_is_applied_and_flagged(db_session, card):
    card.status = "lost"
    change = apply_status_report(db_session, token_id=card.token_id, status="active",
                                 stage=None, occurred_at=T0, source=StatusSource.WEBHOOK)
    assert (change.applied, change.modelled) == (True, False)


def test_a_report_for_an_unknown_card_is_used_when_the_card_appears(
        test_database, db_session, book, lifecycle, token_id):
    other = next(c for c in book.cards() if c.token_id != token_id)
    apply_status_report(db_session, token_id=other.token_id, status="active", stage="digital",
                        occurred_at=T0, source=StatusSource.WEBHOOK)
    create_card(db_session, token_id=token_id, currency="EUR", person_id="100001")
    db_session.commit()
    refresh(test_database, lifecycle)
    db_session.expire_all()
    appeared = db_session.scalar(select(Card).where(Card.token_id == other.token_id))
    assert appeared.status == "active"
    history = status_history(db_session, other.token_id)
    assert {c.card_id for c in history} == {appeared.id}


def test_card_status_messages_update_the_card_through_the_pipeline(
        test_database, db_session, card):
    driver = Driver(test_database, db_session)
    bodies = Bodies(card.token_id)
    late = bodies.card_status("deactivated", at=T0)
    driver.run(bodies.card_status("active", "plastic_delivered",
                                  at=T0 + dt.timedelta(minutes=1)), late)
    db_session.expire_all()
    current = db_session.get(Card, card.id)
    assert (current.status, current.stage) == ("active", "plastic_delivered")
    changes = db_session.scalars(select(CardStatusChange)
                                 .where(CardStatusChange.card_id == card.id)
                                 .order_by(CardStatusChange.id)).all()
    assert [(c.to_status, c.applied) for c in changes] == [("active", True),
                                                          ("deactivated", False)]
    driver.deliver(late)  # a duplicate delivery records nothing new
    driver.process()
    assert len(status_history(db_session, card.token_id)) == 2
