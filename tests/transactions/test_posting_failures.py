"""Each posting failure is recorded with its reason, visible, and posts once repaired."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from console.audit import Actor
from console.audit.models import AuditEvent
from console.cards.services import create_card, issue_funded_card, link_account
from console.ledger import services as ledger
from console.ledger.models import AccountKind
from console.monitoring import event_counts
from console.transactions import services
from console.transactions.models import TransactionPosting
from console.transactions.settings import LifecycleSettings
from tests.transactions.support import Bodies, new_id

OPERATOR = Actor.system("operator-test")
SETTINGS = LifecycleSettings()


def posting_of(session, finci_id) -> TransactionPosting:
    session.expire_all()
    return session.scalar(select(TransactionPosting).where(TransactionPosting.finci_id == finci_id))


def retry(session, posting, **kwargs) -> TransactionPosting:
    result = services.retry_posting(session, OPERATOR, posting.id, SETTINGS, **kwargs)
    session.commit()
    return result


def audited(session, action) -> list[dict]:
    return [json.loads(e.details) for e in session.scalars(
        select(AuditEvent).where(AuditEvent.action == action))]


def posting_failures(session, reason: str) -> int:
    totals = event_counts.event_totals(session)[event_counts.POSTING_FAILURES]
    return totals.get(event_counts.label_key({"reason": reason}), 0)


def test_unknown_card_fails_and_posts_once_the_card_exists(driver, db_session):
    token = new_id("tok")
    failures_before = posting_failures(db_session, "unknown_card")
    driver.run(Bodies(token).presentment(None, 1_200, id_="pres_ghost"))
    posting = posting_of(db_session, "pres_ghost")
    assert (posting.status, posting.reason) == ("failed", "unknown_card")
    assert posting_failures(db_session, "unknown_card") == failures_before + 1  # /metrics
    assert driver.transaction(link_key="presentment:pres_ghost").failed_postings == 1

    card = issue_funded_card(db_session, token_id=token, balance=10_000)
    db_session.commit()
    assert retry(db_session, posting).status == "posted"
    assert ledger.balance(db_session, card.account_id).posted == 8_800
    assert driver.transaction(link_key="presentment:pres_ghost").failed_postings == 0
    [entry] = audited(db_session, "transactions.posting.retry")
    assert entry["previous_reason"] == "unknown_card"


def test_unknown_account_fails_and_posts_once_the_card_is_linked(driver, db_session):
    token = new_id("tok")
    create_card(db_session, token_id=token, currency="EUR")  # known to FINCI, no funds yet
    db_session.commit()
    driver.run(Bodies(token).presentment(None, 500, id_="pres_nofunds"))
    posting = posting_of(db_session, "pres_nofunds")
    assert (posting.status, posting.reason) == ("failed", "unknown_account")

    account = ledger.open_account(db_session, kind=AccountKind.CUSTOMER, name="Funds",
                                  currency="EUR")
    link_account(db_session, OPERATOR, token, account.id)
    db_session.commit()
    # The automatic retry (a scheduler job) picks up causes that repairs remove.
    tried, posted = services.retry_failed(db_session, OPERATOR, SETTINGS)
    assert (tried, posted) == (1, 1)
    assert ledger.balance(db_session, account.id).posted == -500


def test_currency_mismatch_fails_and_posts_to_an_account_in_that_currency(
        driver, card, db_session):
    driver.run(Bodies(card.token_id).presentment(None, 300, id_="pres_usd", currency="USD"))
    posting = posting_of(db_session, "pres_usd")
    assert (posting.status, posting.reason) == ("failed", "currency_mismatch")
    assert "USD" in posting.detail and "EUR" in posting.detail

    usd = ledger.open_account(db_session, kind=AccountKind.CUSTOMER, name="USD wallet",
                              currency="USD")
    link_account(db_session, OPERATOR, card.token_id, usd.id)
    db_session.commit()
    assert retry(db_session, posting).status == "posted"
    assert ledger.balance(db_session, usd.id).posted == -300


def test_over_the_hold_fails_keeps_the_hold_and_posts_when_an_operator_accepts(
        driver, bodies, card, db_session):
    driver.run(bodies.request("auth_tip", 2_000), bodies.advice("auth_tip", 2_000),
               bodies.presentment("auth_tip", 3_000, id_="pres_tip"))
    posting = posting_of(db_session, "pres_tip")
    assert (posting.status, posting.reason) == ("failed", "over_hold")
    assert ledger.balance(db_session, card.account_id).held == 2_000  # still reserved

    # A plain retry judges it the same way; accepting is a decision, and it is audited.
    assert retry(db_session, posting).reason == "over_hold"
    posted = retry(db_session, posting, accept_over_hold=True)
    assert (posted.status, posted.accepted_by) == ("posted", OPERATOR.id)
    balance = ledger.balance(db_session, card.account_id)
    assert (balance.posted, balance.held) == (97_000, 0)
    assert driver.transaction("auth_tip").state == "posted"
    assert audited(db_session, "transactions.posting.accept")[0]["previous_reason"] == "over_hold"


def test_closed_account_fails_and_posts_once_reopened(driver, card, db_session):
    ledger.close_account(db_session, card.account_id)
    db_session.commit()
    driver.run(Bodies(card.token_id).refund(None, 400, id_="ref_closed"))
    posting = posting_of(db_session, "ref_closed")
    assert (posting.status, posting.reason) == ("failed", "account_closed")

    ledger.reopen_account(db_session, card.account_id)
    db_session.commit()
    assert retry(db_session, posting).status == "posted"
    assert ledger.balance(db_session, card.account_id).posted == 100_400


def test_a_declined_authorization_that_is_presented_anyway_is_flagged(
        driver, bodies, card, db_session):
    driver.run(bodies.request("auth_no", 1_000),
               bodies.advice("auth_no", 1_000, code="InsufficientFunds"),
               bodies.presentment("auth_no", 1_000, id_="pres_no"))
    posting = posting_of(db_session, "pres_no")
    assert (posting.reason, posting.detail) == (
        "over_hold", "presented 1000 EUR: the authorization was declined")


def test_only_failed_postings_can_be_retried_and_only_over_hold_accepted(
        driver, bodies, card, db_session):
    driver.run(bodies.presentment(None, 100, id_="pres_ok"),
               bodies.presentment(None, 100, id_="pres_usd2", currency="USD"))
    with pytest.raises(services.RetryRefused, match="not failed"):
        retry(db_session, posting_of(db_session, "pres_ok"))
    with pytest.raises(services.RetryRefused, match="over the hold"):
        retry(db_session, posting_of(db_session, "pres_usd2"), accept_over_hold=True)
    with pytest.raises(services.PostingNotFound):
        services.retry_posting(db_session, OPERATOR, 10**9, SETTINGS)


def test_failures_are_listed_for_operators_by_reason(driver, bodies, card, db_session):
    driver.run(bodies.presentment(None, 100, currency="USD"),
               Bodies(new_id("tok")).presentment(None, 100))
    assert services.failure_counts(db_session) == {"currency_mismatch": 1, "unknown_card": 1}
    assert {p.reason for p, _t in services.failed_postings(db_session)} == {
        "currency_mismatch", "unknown_card"}
