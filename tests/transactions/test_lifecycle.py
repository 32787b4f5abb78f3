"""The lifecycle through the real ingress and worker: states, amounts, holds and postings."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from console.ledger import services as ledger
from console.ledger.models import Hold, LedgerJournal
from console.transactions.models import TransactionPosting


def hold_of(session, authorization_id) -> Hold | None:
    session.expire_all()
    return session.scalar(select(Hold).where(Hold.authorization_id == authorization_id))


def balance(session, card):
    session.expire_all()
    found = ledger.balance(session, card.account_id)
    return found.posted, found.held


def postings(session, transaction) -> list[TransactionPosting]:
    session.expire_all()
    return list(session.scalars(select(TransactionPosting)
                                .where(TransactionPosting.transaction_id == transaction.id)
                                .order_by(TransactionPosting.id)))


def journals(session) -> int:
    return session.scalar(select(func.count()).select_from(LedgerJournal))


def test_an_approved_authorization_holds_funds_until_its_presentment_posts(
        driver, bodies, card, db_session):
    driver.run(bodies.request("auth_full", 5_000))
    assert driver.transaction("auth_full").state == "approved"  # our decision, before the advice
    driver.run(bodies.advice("auth_full", 5_000))
    assert balance(db_session, card) == (100_000, 5_000)
    driver.run(bodies.presentment("auth_full", 5_000))
    transaction = driver.transaction("auth_full")
    assert (transaction.state, transaction.authorized_amount, transaction.cleared_amount) == (
        "posted", 5_000, 5_000)
    assert balance(db_session, card) == (95_000, 0)
    assert hold_of(db_session, "auth_full").status == "converted"


def test_a_partial_presentment_posts_what_was_presented_and_frees_the_rest(
        driver, bodies, card, db_session):
    driver.run(bodies.request("auth_fuel", 10_000), bodies.advice("auth_fuel", 10_000),
               bodies.presentment("auth_fuel", 6_420))
    transaction = driver.transaction("auth_fuel")
    assert (transaction.state, transaction.authorized_amount, transaction.cleared_amount) == (
        "posted", 10_000, 6_420)
    assert balance(db_session, card) == (93_580, 0)


def test_partial_reversals_reduce_the_hold_and_a_full_reversal_releases_it(
        driver, bodies, card, db_session):
    driver.run(bodies.request("auth_rev", 8_000), bodies.advice("auth_rev", 8_000),
               bodies.reversal("auth_rev", 3_000))
    transaction = driver.transaction("auth_rev")
    assert (transaction.state, transaction.reversed_amount) == ("approved", 3_000)
    assert hold_of(db_session, "auth_rev").amount == 5_000
    assert balance(db_session, card) == (100_000, 5_000)
    driver.run(bodies.reversal("auth_rev", 5_000))
    assert driver.transaction("auth_rev").state == "reversed"
    hold = hold_of(db_session, "auth_rev")
    assert (hold.status, hold.release_reason) == ("released", "reversal")
    assert balance(db_session, card) == (100_000, 0)


def test_a_declined_advice_releases_the_hold_and_declines_the_transaction(
        driver, bodies, card, db_session):
    driver.run(bodies.request("auth_late", 4_000),
               bodies.advice("auth_late", 4_000, code="InsufficientFunds"))
    transaction = driver.transaction("auth_late")
    assert (transaction.state, transaction.authorized_amount,
            transaction.response_code) == ("declined", 0, "InsufficientFunds")
    assert balance(db_session, card) == (100_000, 0)


def test_a_presentment_with_no_authorization_posts_directly(driver, bodies, card, db_session):
    body = bodies.presentment(None, 2_500, id_="pres_inflight")
    driver.run(body)
    transaction = driver.transaction(link_key="presentment:pres_inflight")
    assert (transaction.state, transaction.authorization_id,
            transaction.awaiting_authorization) == ("posted", None, False)
    assert balance(db_session, card) == (97_500, 0)


def test_an_orphan_presentment_is_parked_until_its_authorization_arrives(
        driver, bodies, card, db_session):
    presentment = bodies.presentment("auth_orphan", 3_000)
    request, advice = bodies.request("auth_orphan", 3_000), bodies.advice("auth_orphan", 3_000)
    driver.run(presentment)
    transaction = driver.transaction("auth_orphan")
    assert (transaction.state, transaction.awaiting_authorization) == ("cleared", True)
    assert [p.status for p in postings(db_session, transaction)] == ["parked"]
    assert balance(db_session, card) == (100_000, 0)

    driver.run(request)  # FINCI's outcome is still unknown: the presentment keeps waiting
    assert [p.status for p in postings(db_session, transaction)] == ["parked"]
    driver.run(advice)
    transaction = driver.transaction("auth_orphan")
    assert (transaction.state, transaction.awaiting_authorization,
            transaction.has_request, transaction.has_advice) == ("posted", False, True, True)
    assert balance(db_session, card) == (97_000, 0)
    assert hold_of(db_session, "auth_orphan").status == "converted"


def test_a_refund_credits_the_card_in_part_or_in_full(driver, bodies, card, db_session):
    driver.run(bodies.request("auth_shoes", 7_000), bodies.advice("auth_shoes", 7_000),
               bodies.presentment("auth_shoes", 7_000), bodies.refund("auth_shoes", 2_000))
    transaction = driver.transaction("auth_shoes")
    assert (transaction.state, transaction.cleared_amount, transaction.refunded_amount) == (
        "refunded", 7_000, 2_000)
    assert balance(db_session, card) == (95_000, 0)


def test_a_refund_of_an_authorization_never_seen_still_credits_the_card(
        driver, bodies, card, db_session):
    driver.run(bodies.refund("auth_unseen", 900))
    transaction = driver.transaction("auth_unseen")
    assert (transaction.state, transaction.awaiting_authorization) == ("refunded", True)
    assert balance(db_session, card) == (100_900, 0)


def test_duplicate_deliveries_are_one_message_and_one_posting(driver, bodies, card, db_session):
    presentment = bodies.presentment(None, 1_000, id_="pres_twice")
    driver.deliver(presentment)
    driver.deliver(presentment)
    driver.deliver(presentment, webhook_id="msg_other_webhook_id_same_message")
    driver.process()
    assert len(driver.stored("pres_twice")) == 1
    assert balance(db_session, card) == (99_000, 0)


def test_replaying_every_processed_message_posts_nothing_new(
        driver, bodies, card, db_session, test_database):
    from console.audit import Actor
    from console.ingress.models import StoredMessage
    from console.pipeline import replay
    from console.pipeline.handlers import Context, handler_for
    from tests.transactions.support import PIPELINE

    driver.run(bodies.request("auth_r1", 5_000), bodies.advice("auth_r1", 5_000),
               bodies.presentment("auth_r1", 4_000), bodies.refund("auth_r1", 1_000),
               bodies.request("auth_r2", 2_000), bodies.advice("auth_r2", 2_000),
               bodies.reversal("auth_r2", 500), bodies.presentment(None, 700))
    before = (journals(db_session), balance(db_session, card))
    stored = list(db_session.scalars(select(StoredMessage)))

    # Through the pipeline: every message re-queued, the worker finds its effect recorded.
    for message in stored:
        replay.start(db_session, Actor.system("test"), replay.Criteria(message_id=message.id),
                     "replay test", PIPELINE)
    db_session.commit()
    report = driver.process()
    assert report.noop == len(stored)
    # Past the effect ledger: the handlers themselves, applied again, change nothing either.
    from console.finci.payload import parse_message

    for message in stored:
        parsed = parse_message(message.body.encode())
        handler_for(parsed.type).handler(Context(db_session, parsed, message,
                                                 Actor.system("test"), 2))
    db_session.flush()
    assert (journals(db_session), balance(db_session, card)) == before


def test_without_our_ledger_transactions_and_states_work_and_nothing_is_posted(
        driver, bodies, card, db_session):
    from console.transactions.settings import LifecycleSettings

    driver.lifecycle = LifecycleSettings(keeps_ledger=False)
    count = journals(db_session)
    driver.run(bodies.request("auth_nl", 3_000), bodies.advice("auth_nl", 3_000),
               bodies.presentment("auth_nl", 3_000), bodies.refund("auth_nl", 500))
    transaction = driver.transaction("auth_nl")
    assert (transaction.state, transaction.cleared_amount, transaction.refunded_amount) == (
        "refunded", 3_000, 500)
    assert {p.status for p in postings(db_session, transaction)} == {"skipped"}
    assert journals(db_session) == count


@pytest.mark.parametrize("amount, state", [(5_500, "posted"), (5_501, "cleared")],
                         ids=["at-tolerance", "over-tolerance"])
def test_a_presentment_may_exceed_the_authorization_by_the_tolerance(
        driver, bodies, card, db_session, amount, state):
    driver.run(bodies.request("auth_tip", 5_000), bodies.advice("auth_tip", 5_000),
               bodies.presentment("auth_tip", amount))
    assert driver.transaction("auth_tip").state == state


def test_luhn_valid_finci_ids_alike_when_masked_stay_two_transactions_each_posted_once(
        driver, bodies, card, db_session):
    # One FINCI id in ten passes the Luhn check. Masked, these two would both read
    # 251001********6788: their timelines, holds and postings would meet in one transaction.
    first, second = "251001435963146788", "251001000000036788"
    driver.run(bodies.request(first, 1_000), bodies.advice(first, 1_000),
               bodies.request(second, 2_000), bodies.advice(second, 2_000),
               bodies.presentment(first, 1_000), bodies.presentment(second, 2_000))
    for finci_id, amount in ((first, 1_000), (second, 2_000)):
        transaction = driver.transaction(finci_id)
        assert (transaction.authorization_id, transaction.state, transaction.cleared_amount) == (
            finci_id, "posted", amount)
        assert hold_of(db_session, finci_id).status == "converted"
    assert balance(db_session, card) == (97_000, 0)
