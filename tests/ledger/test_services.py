"""The ledger: balanced postings, holds (one per authorization), balances, verification."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from console.cards.services import issue_funded_card
from console.ledger import services as ledger
from console.ledger.models import (
    AccountKind,
    Hold,
    HoldSource,
    LedgerAccount,
    LedgerEntry,
    ReleaseReason,
)

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
LATER = NOW + dt.timedelta(days=7)


@pytest.fixture
def card(db_session):
    return issue_funded_card(db_session, token_id="tok_ledger", currency="EUR", balance=10_000)


def hold(session, card, authorization_id="auth_1", amount=1_000, **kwargs):
    values = dict(authorization_id=authorization_id, account_id=card.account_id,
                  card_id=card.id, amount=amount, currency="EUR", source=HoldSource.DECISION,
                  expires_at=LATER, now=NOW)
    values.update(kwargs)
    return ledger.place_hold(session, **values)


def test_funding_posts_a_balanced_journal(db_session, card):
    balance = ledger.balance(db_session, card.account_id)
    assert (balance.posted, balance.held, balance.available) == (10_000, 0, 10_000)
    entries = db_session.scalars(select(LedgerEntry)).all()
    assert sorted(e.amount for e in entries) == [-10_000, 10_000]
    funding = ledger.funding_account(db_session, "EUR")
    assert ledger.balance(db_session, funding.id).posted == -10_000
    assert ledger.verify_balances(db_session) == []


def test_a_journal_is_posted_once_per_reference(db_session, card):
    first = ledger.fund(db_session, card.account_id, 500, reference="load:42", posted_by="t")
    again = ledger.fund(db_session, card.account_id, 500, reference="load:42", posted_by="t")
    assert first.id == again.id
    assert ledger.balance(db_session, card.account_id).posted == 10_500


@pytest.mark.parametrize("entries", [[(1, 100)], [(1, 100), (2, -99)], [(1, 0), (2, 0)]])
def test_unbalanced_or_empty_journals_are_refused(db_session, entries):
    a = ledger.open_account(db_session, kind=AccountKind.CUSTOMER, name="a", currency="EUR")
    b = ledger.open_account(db_session, kind=AccountKind.SETTLEMENT, name="b", currency="EUR")
    ids = {1: a.id, 2: b.id}
    with pytest.raises(ledger.LedgerError):
        ledger.post_journal(db_session, kind="adjustment", reference="bad", posted_by="t",
                            entries=[(ids[i], amount) for i, amount in entries])


def test_a_journal_cannot_balance_across_currencies(db_session):
    eur = ledger.open_account(db_session, kind=AccountKind.CUSTOMER, name="e", currency="EUR")
    usd = ledger.open_account(db_session, kind=AccountKind.SETTLEMENT, name="u", currency="USD")
    with pytest.raises(ledger.LedgerError, match="balance"):
        ledger.post_journal(db_session, kind="adjustment", reference="fx", posted_by="t",
                            entries=[(eur.id, 100), (usd.id, -100)])


def test_a_hold_reduces_the_available_balance_until_released(db_session, card):
    hold(db_session, card, amount=2_500)
    assert ledger.balance(db_session, card.account_id).available == 7_500
    released = ledger.release_hold(db_session, "auth_1", ReleaseReason.ADVICE_DECLINED, NOW)
    assert released.amount == 2_500
    assert ledger.balance(db_session, card.account_id).available == 10_000
    assert ledger.release_hold(db_session, "auth_1", ReleaseReason.ADVICE_DECLINED) is None
    row = ledger.hold_for(db_session, "auth_1")
    assert (row.status, row.release_reason) == ("released", "advice_declined")


def test_a_second_hold_for_the_same_authorization_is_impossible(db_session, card):
    hold(db_session, card)
    with pytest.raises(IntegrityError), db_session.begin_nested():
        hold(db_session, card)
    assert ledger.balance(db_session, card.account_id).held == 1_000


def test_a_hold_in_another_currency_is_refused(db_session, card):
    with pytest.raises(ledger.LedgerError):
        hold(db_session, card, currency="USD")


def test_adjusting_and_converting_a_hold(db_session, card):
    hold(db_session, card, amount=1_000)
    assert ledger.adjust_hold(db_session, "auth_1", 1_200) == 200
    assert ledger.balance(db_session, card.account_id).held == 1_200
    settlement = ledger.open_account(db_session, kind=AccountKind.SETTLEMENT, name="s",
                                     currency="EUR")
    journal = ledger.post_journal(db_session, kind="presentment", reference="presentment:p1",
                                  posted_by="t", entries=[(card.account_id, -1_200),
                                                          (settlement.id, 1_200)])
    converted = ledger.convert_hold(db_session, "auth_1", journal.id, NOW)
    assert converted.amount == 1_200
    balance = ledger.balance(db_session, card.account_id)
    assert (balance.posted, balance.held) == (8_800, 0)
    assert ledger.hold_for(db_session, "auth_1").converted_journal_id == journal.id
    assert ledger.verify_balances(db_session) == []


def test_only_expired_open_holds_are_released_by_the_expiry_job(db_session, card):
    hold(db_session, card, "auth_old", expires_at=NOW)
    hold(db_session, card, "auth_new", expires_at=LATER)
    released = ledger.release_expired_holds(db_session, NOW + dt.timedelta(seconds=1))
    assert [r.amount for r in released] == [1_000]
    assert ledger.hold_for(db_session, "auth_old").release_reason == "expired"
    assert ledger.hold_for(db_session, "auth_new").status == "open"


def test_spend_counts_open_and_converted_holds_but_not_released_ones(db_session, card):
    from sqlalchemy import select as sa_select

    hold(db_session, card, "auth_a", amount=100)
    hold(db_session, card, "auth_b", amount=200)
    ledger.release_hold(db_session, "auth_b", ReleaseReason.ADVICE_DECLINED, NOW)
    spent = db_session.scalar(sa_select(ledger.spend_since(NOW, card_id=card.id)))
    assert spent == 100


def test_verification_finds_totals_that_disagree_with_history(db_session, card):
    hold(db_session, card)
    db_session.execute(update(LedgerAccount).where(LedgerAccount.id == card.account_id)
                       .values(posted_balance=1, held_amount=0))
    problems = {(p.account_id, p.field) for p in ledger.verify_balances(db_session)}
    assert problems == {(card.account_id, "posted_balance"), (card.account_id, "held_amount")}


def test_the_database_refuses_a_negative_hold_total(db_session, card):
    with pytest.raises(IntegrityError), db_session.begin_nested():
        db_session.execute(update(LedgerAccount).where(LedgerAccount.id == card.account_id)
                           .values(held_amount=-1))


def test_holds_are_unique_per_authorization_in_the_schema(db_session, card):
    hold(db_session, card)
    with pytest.raises(IntegrityError), db_session.begin_nested():
        db_session.add(Hold(authorization_id="auth_1", account_id=card.account_id,
                            card_id=card.id, amount=1, currency="EUR", status="open",
                            source="advice", placed_at=NOW, expires_at=LATER))
        db_session.flush()
