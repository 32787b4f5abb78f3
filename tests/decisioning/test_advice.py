"""Advices against our answers: every outcome, what happens to the hold, replays, order."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from console.audit import Actor
from console.decisioning import services
from console.decisioning.advice import apply_advice
from console.decisioning.models import AdviceOutcome, DecisionRecord, HoldAction, Reason
from console.decisioning.services import decide
from console.decisioning.settings import AnswerStatus, DecisioningMode
from console.flows.services import Flow, set_flow
from console.ledger import services as ledger
from console.ledger.models import Hold
from tests.decisioning.helpers import (
    NOW,
    FakeClock,
    advice_for,
    authorization,
    funded_card,
    settings,
)


def hold_of(session, authorization_id) -> Hold | None:
    return session.scalar(select(Hold).where(Hold.authorization_id == authorization_id))


def record_of(session, authorization_id) -> DecisionRecord:
    return session.scalar(select(DecisionRecord)
                          .where(DecisionRecord.authorization_id == authorization_id))


# (case, balance, amount, FINCI's response code, outcome, hold action, hold status after)
CASES = [
    ("both approved", 10_000, 2_000, "Approved", AdviceOutcome.APPROVED_AS_ANSWERED,
     HoldAction.KEPT, "open"),
    ("we approved, FINCI declined", 10_000, 2_000, "InsufficientFunds",
     AdviceOutcome.FINCI_DECLINED, HoldAction.RELEASED, "released"),
    ("we approved, FINCI says something else", 10_000, 2_000, "DoNotHonour",
     AdviceOutcome.FINCI_DECLINED, HoldAction.RELEASED, "released"),
    ("we declined, FINCI approved anyway", 100, 2_000, "Approved",
     AdviceOutcome.FINCI_APPROVED, HoldAction.PLACED, "open"),
    ("both declined", 100, 2_000, "InsufficientFunds", AdviceOutcome.DECLINED_AS_ANSWERED,
     HoldAction.NONE, None),
]


@pytest.mark.parametrize(("case", "balance", "amount", "code", "outcome", "action", "status"),
                         CASES, ids=[c[0] for c in CASES])
def test_advice_outcomes(db_session, case, balance, amount, code, outcome, action, status):
    card = funded_card(db_session, balance=balance)
    request = authorization(amount=amount)
    decide(db_session, request, settings(), FakeClock())
    result = apply_advice(db_session, advice_for(request, code), settings(), message_id=42,
                          clock=FakeClock())
    assert (result.outcome, result.hold_action) == (outcome, action)
    hold = hold_of(db_session, request.id)
    assert (hold.status if hold else None) == status
    record = record_of(db_session, request.id)
    assert (record.advice_response_code, record.advice_outcome, record.hold_action,
            record.advice_message_id) == (code, outcome.value, action.value, 42)
    expected_held = amount if status == "open" else 0
    assert ledger.balance(db_session, card.account_id).held == expected_held
    assert ledger.verify_balances(db_session) == []


def test_a_late_approval_declined_by_finci_counts_as_a_timeout_and_frees_the_funds(db_session):
    card = funded_card(db_session, balance=10_000)
    # FINCI created the request 5 s before we decided: our answer cannot have been in time.
    request = authorization(amount=3_000, created_at=NOW - dt.timedelta(seconds=5))
    assert decide(db_session, request, settings(), FakeClock()).approve
    result = apply_advice(db_session, advice_for(request, "InsufficientFunds"), settings())
    assert result.outcome is AdviceOutcome.TIMEOUT and result.hold_action is HoldAction.RELEASED
    assert ledger.balance(db_session, card.account_id).available == 10_000
    assert record_of(db_session, request.id).divergent


def test_an_approved_amount_different_from_the_hold_adjusts_it(db_session):
    card = funded_card(db_session, balance=10_000)
    request = authorization(amount=2_000)
    decide(db_session, request, settings(), FakeClock())
    result = apply_advice(db_session, advice_for(request, "Approved", amount=1_500), settings())
    assert result.hold_action is HoldAction.ADJUSTED
    assert hold_of(db_session, request.id).amount == 1_500
    assert ledger.balance(db_session, card.account_id).held == 1_500


def test_an_advice_with_no_request_is_recorded_as_decided_by_finci(db_session):
    card = funded_card(db_session, balance=0)
    request = authorization(amount=800)
    result = apply_advice(db_session, advice_for(request, "Approved"), settings())
    assert result.outcome is AdviceOutcome.FINCI_DECIDED
    assert result.hold_action is HoldAction.PLACED
    record = record_of(db_session, request.id)
    assert (record.origin, record.answer, record.reason) == ("advice", None, "finci_decided")
    assert hold_of(db_session, request.id).source == "advice"
    # FINCI approved: the ledger shows it, even below zero.
    assert ledger.balance(db_session, card.account_id).available == -800


def test_a_declined_advice_with_no_request_holds_nothing(db_session):
    funded_card(db_session)
    request = authorization(amount=800)
    result = apply_advice(db_session, advice_for(request, "InsufficientFunds"), settings())
    assert (result.outcome, result.hold_action) == (AdviceOutcome.FINCI_DECIDED, HoldAction.NONE)
    assert hold_of(db_session, request.id) is None


def test_an_approved_advice_for_an_unknown_card_is_flagged(db_session):
    request = authorization(token_id="tok_unknown")
    result = apply_advice(db_session, advice_for(request, "Approved"), settings())
    assert result.hold_action is HoldAction.NO_ACCOUNT


def test_a_request_arriving_after_its_advice_gets_finci_outcome_and_changes_nothing(db_session):
    funded_card(db_session, balance=10_000)
    request = authorization(amount=800)
    apply_advice(db_session, advice_for(request, "InsufficientFunds"), settings())
    decision = decide(db_session, request, settings(), FakeClock())
    assert not decision.approve and decision.reason is Reason.ADVICE_ALREADY_RECEIVED
    assert decision.repeated and hold_of(db_session, request.id) is None


def test_applying_the_same_advice_again_changes_nothing(db_session):
    card = funded_card(db_session, balance=10_000)
    request = authorization(amount=2_000)
    decide(db_session, request, settings(), FakeClock())
    advice = advice_for(request, "InsufficientFunds")
    first = apply_advice(db_session, advice, settings())
    again = apply_advice(db_session, advice, settings())
    assert again.already_applied and again.outcome is first.outcome
    assert ledger.balance(db_session, card.account_id).held == 0
    assert ledger.verify_balances(db_session) == []


def test_in_a_finci_managed_program_advices_are_tracked_the_same_way(db_session):
    card = funded_card(db_session, balance=0)
    finci = settings(mode=DecisioningMode.FINCI)
    approved, declined = authorization(amount=500), authorization(amount=700)
    for request in (approved, declined):
        assert decide(db_session, request, finci, FakeClock()).reason is Reason.FINCI_MANAGED
    assert apply_advice(db_session, advice_for(approved, "Approved"), finci).hold_action is (
        HoldAction.PLACED)
    result = apply_advice(db_session, advice_for(declined, "InsufficientFunds"), finci)
    assert (result.outcome, result.hold_action) == (AdviceOutcome.FINCI_DECIDED, HoldAction.NONE)
    assert ledger.balance(db_session, card.account_id).held == 500


def test_a_stand_in_approval_is_compared_like_any_answer_of_ours(db_session):
    funded_card(db_session, balance=0)
    set_flow(db_session, Actor.cli("oncall"), Flow.DECISIONING, enabled=False, reason="INC-9")
    request = authorization(amount=300)
    assert decide(db_session, request, settings(stand_in=AnswerStatus.SUCCESS), FakeClock()).approve
    result = apply_advice(db_session, advice_for(request, "InsufficientFunds"), settings())
    assert (result.outcome, result.hold_action) == (AdviceOutcome.FINCI_DECLINED,
                                                    HoldAction.RELEASED)


# --- no orphan holds --------------------------------------------------------------------------

def test_an_approval_never_followed_by_an_advice_is_released_when_its_hold_expires(db_session):
    card = funded_card(db_session, balance=10_000)
    request = authorization(amount=1_000)
    decide(db_session, request, settings(hold_ttl_hours=24), FakeClock())
    assert ledger.release_expired_holds(db_session, NOW + dt.timedelta(hours=23)) == []
    [released] = ledger.release_expired_holds(db_session, NOW + dt.timedelta(hours=24))
    assert released.amount == 1_000
    assert hold_of(db_session, request.id).release_reason == "expired"
    assert ledger.balance(db_session, card.account_id).held == 0


def test_a_late_approval_leaves_no_hold_whatever_finci_does_next(db_session, monkeypatch):
    card = funded_card(db_session, balance=10_000)
    clock = FakeClock()
    place_hold = ledger.place_hold

    def slow(*args, **kwargs):
        hold_id = place_hold(*args, **kwargs)
        clock.advance(2)
        return hold_id

    monkeypatch.setattr(services.ledger, "place_hold", slow)
    request = authorization(amount=1_000)
    assert not decide(db_session, request, settings(), clock).approve
    monkeypatch.undo()
    result = apply_advice(db_session, advice_for(request, "InsufficientFunds"), settings())
    assert result.outcome is AdviceOutcome.DECLINED_AS_ANSWERED
    assert hold_of(db_session, request.id) is None
    assert ledger.balance(db_session, card.account_id).held == 0
