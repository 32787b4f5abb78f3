"""decide(): answers, holds, records, repeats, kill switch, FINCI-managed mode, fallbacks."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text

from console.audit import Actor
from console.decisioning import services
from console.decisioning.config import save_config
from console.decisioning.models import DecisionRecord, Reason
from console.decisioning.services import decide
from console.decisioning.settings import AnswerStatus, DecisioningMode
from console.flows.services import Flow, set_flow
from console.ledger import services as ledger
from console.ledger.models import Hold, HoldSource
from tests.decisioning.helpers import FakeClock, authorization, funded_card, settings

ADMIN = Actor.cli("admin-ada")


def holds(session) -> list[Hold]:
    return list(session.scalars(select(Hold).order_by(Hold.id)))


def record_for(session, authorization_id) -> DecisionRecord:
    return session.scalar(select(DecisionRecord)
                          .where(DecisionRecord.authorization_id == authorization_id))


def test_an_approval_places_a_hold_with_the_decision_record(db_session):
    card = funded_card(db_session, balance=10_000)
    request = authorization(amount=2_500)
    decision = decide(db_session, request, settings(), FakeClock())
    assert decision.approve and decision.reason is Reason.APPROVED and not decision.repeated
    [hold] = holds(db_session)
    assert (hold.authorization_id, hold.amount, hold.currency, hold.status, hold.source) == (
        request.id, 2_500, "EUR", "open", "decision")
    assert hold.id == decision.hold_id
    assert ledger.balance(db_session, card.account_id).available == 7_500
    record = record_for(db_session, request.id)
    assert (record.answer, record.reason, record.default_used) == ("success", "approved", False)
    assert record.card_id == card.id and record.account_id == card.account_id
    assert {t["rule"] for t in record.rule_trace} >= {"card_known", "balance", "velocity"}
    assert all(t["passed"] is not False for t in record.rule_trace)
    assert set(record.latency_ms) >= {"lookup", "config", "card", "usage", "rules", "hold"}
    assert record.total_ms is not None and record.rule_config_version == 0


def test_a_decline_records_its_reason_and_holds_nothing(db_session):
    funded_card(db_session, balance=1_000)
    request = authorization(amount=1_001)
    decision = decide(db_session, request, settings(), FakeClock())
    assert decision.answer is AnswerStatus.ERROR and decision.reason is Reason.INSUFFICIENT_FUNDS
    assert holds(db_session) == []
    record = record_for(db_session, request.id)
    assert record.answer == "error" and record.reason == "insufficient_funds"
    assert "balance" in record.detail
    assert [t["rule"] for t in record.rule_trace if t["passed"] is False] == ["balance"]


def test_an_unknown_card_is_declined(db_session):
    decision = decide(db_session, authorization(token_id="tok_nobody"), settings(), FakeClock())
    assert decision.answer is AnswerStatus.ERROR and decision.reason is Reason.CARD_UNKNOWN


def test_a_card_without_an_account_is_declined(db_session):
    from console.cards.services import create_card

    create_card(db_session, token_id="tok_loose", currency="EUR")
    decision = decide(db_session, authorization(token_id="tok_loose"), settings(), FakeClock())
    assert decision.reason is Reason.NO_ACCOUNT


def test_merchant_names_are_stored_with_card_numbers_masked(db_session):
    funded_card(db_session)
    request = authorization()
    decide(db_session, request, settings(), FakeClock())
    name = record_for(db_session, request.id).merchant_name
    assert name.startswith("TEST SHOP") and "******" in name


def test_a_repeated_request_gets_the_first_answer_and_no_second_hold(db_session):
    card = funded_card(db_session, balance=3_000)
    request = authorization(amount=2_000)
    first = decide(db_session, request, settings(), FakeClock())
    again = decide(db_session, request, settings(), FakeClock())
    assert first.approve and again.approve and again.repeated
    assert again.record_id == first.record_id
    assert len(holds(db_session)) == 1
    assert ledger.balance(db_session, card.account_id).available == 1_000


def test_a_repeat_with_the_same_business_key_but_other_content_keeps_the_first_answer(db_session):
    funded_card(db_session, balance=3_000)
    request = authorization(amount=500)
    decide(db_session, request, settings(), FakeClock())
    bigger = authorization(amount=9_000, id_=request.id)
    again = decide(db_session, bigger, settings(), FakeClock())
    assert again.approve and again.repeated
    assert [h.amount for h in holds(db_session)] == [500]


def test_a_repeated_decline_stays_a_decline_even_after_funds_arrive(db_session):
    card = funded_card(db_session, balance=100)
    request = authorization(amount=500)
    assert not decide(db_session, request, settings(), FakeClock()).approve
    ledger.fund(db_session, card.account_id, 10_000, reference="load:later", posted_by="test")
    again = decide(db_session, request, settings(), FakeClock())
    assert not again.approve and again.repeated and again.reason is Reason.INSUFFICIENT_FUNDS


def test_with_the_kill_switch_off_the_stand_in_answer_is_given_and_recorded(db_session):
    funded_card(db_session, balance=10_000)
    set_flow(db_session, ADMIN, Flow.DECISIONING, enabled=False, reason="incident INC-7")
    request = authorization(amount=100)
    decision = decide(db_session, request, settings(), FakeClock())
    assert decision.answer is AnswerStatus.ERROR and decision.reason is Reason.KILL_SWITCH
    record = record_for(db_session, request.id)
    assert record.reason == "kill_switch" and record.rule_trace[0]["rule"] == "kill_switch"
    assert holds(db_session) == []


def test_a_stand_in_approval_places_a_stand_in_hold(db_session):
    funded_card(db_session, balance=0)
    set_flow(db_session, ADMIN, Flow.DECISIONING, enabled=False, reason="incident INC-8")
    request = authorization(amount=700)
    decision = decide(db_session, request, settings(stand_in=AnswerStatus.SUCCESS), FakeClock())
    assert decision.approve and decision.reason is Reason.KILL_SWITCH
    [hold] = holds(db_session)
    assert hold.source == HoldSource.STAND_IN and hold.amount == 700


def test_in_a_finci_managed_program_requests_are_acknowledged_not_decided(db_session):
    funded_card(db_session, balance=0)
    request = authorization(amount=100_000)
    decision = decide(db_session, request, settings(mode=DecisioningMode.FINCI), FakeClock())
    assert decision.approve and decision.reason is Reason.FINCI_MANAGED
    record = record_for(db_session, request.id)
    assert record.mode == "finci" and record.rule_trace == [] and holds(db_session) == []
    acknowledged_with_error = settings(mode=DecisioningMode.FINCI,
                                       acknowledgement=AnswerStatus.ERROR)
    other = decide(db_session, authorization(), acknowledged_with_error, FakeClock())
    assert other.answer is AnswerStatus.ERROR and other.reason is Reason.FINCI_MANAGED


def test_limits_count_earlier_holds_of_the_day(db_session):
    funded_card(db_session, balance=100_000)
    save_config(db_session, ADMIN, {"limits": [
        {"scope": "card", "period": "day", "currency": "EUR", "max_amount": 5_000}]},
        reason="daily limit")
    clock = FakeClock()
    assert decide(db_session, authorization(amount=3_000), settings(), clock).approve
    assert decide(db_session, authorization(amount=2_000), settings(), clock).approve
    third = decide(db_session, authorization(amount=1), settings(), clock)
    assert third.reason is Reason.LIMIT_EXCEEDED
    assert "limit.card.day" in third.detail


def test_a_released_hold_no_longer_counts_against_the_limit(db_session):
    funded_card(db_session, balance=100_000)
    save_config(db_session, ADMIN, {"limits": [
        {"scope": "account", "period": "month", "currency": "EUR", "max_amount": 5_000}]},
        reason="monthly limit")
    first = authorization(amount=5_000)
    assert decide(db_session, first, settings(), FakeClock()).approve
    assert not decide(db_session, authorization(amount=1), settings(), FakeClock()).approve
    ledger.release_hold(db_session, first.id, ledger.ReleaseReason.ADVICE_DECLINED)
    assert decide(db_session, authorization(amount=1), settings(), FakeClock()).approve


def test_velocity_counts_recent_requests_of_the_card(db_session):
    funded_card(db_session, balance=100_000)
    save_config(db_session, ADMIN, {"velocity_max": 2, "velocity_window_s": 60},
                reason="velocity")
    clock = FakeClock()
    answers = [decide(db_session, authorization(amount=1), settings(), clock).reason
               for _ in range(3)]
    assert answers == [Reason.APPROVED, Reason.APPROVED, Reason.VELOCITY]
    clock.advance(61)
    assert decide(db_session, authorization(amount=1), settings(), clock).approve


def test_decisions_name_the_rule_configuration_version_they_applied(db_session):
    funded_card(db_session)
    save_config(db_session, ADMIN, {"blocked_mccs": ["7995"]}, reason="gambling")
    request = authorization(mcc="7995")
    assert decide(db_session, request, settings(), FakeClock()).reason is Reason.MCC_BLOCKED
    assert record_for(db_session, request.id).rule_config_version == 1


# --- the safe default -------------------------------------------------------------------------

def test_running_out_of_budget_answers_the_safe_default_and_records_why(db_session,
                                                                        monkeypatch):
    funded_card(db_session, balance=10_000)
    clock = FakeClock()
    usage = services._usage

    def slow_usage(*args):
        clock.advance(1.3)  # past the point where rules must be done (1.5 s minus the reserve)
        return usage(*args)

    monkeypatch.setattr(services, "_usage", slow_usage)
    request = authorization(amount=100)
    decision = decide(db_session, request, settings(), clock)
    assert decision.answer is AnswerStatus.ERROR and decision.default_used
    assert decision.reason is Reason.BUDGET_EXCEEDED
    record = record_for(db_session, request.id)
    assert record.default_used and record.reason == "budget_exceeded"
    assert record.rule_trace == [{"rule": "budget", "passed": False,
                                  "detail": "out of time in stage 'usage'"}]
    assert record.latency_ms["usage"] >= 1300
    assert holds(db_session) == []


def test_an_approval_that_becomes_late_is_withdrawn_with_its_hold(db_session, monkeypatch):
    card = funded_card(db_session, balance=10_000)
    clock = FakeClock()
    place_hold = ledger.place_hold

    def slow_place_hold(*args, **kwargs):
        hold_id = place_hold(*args, **kwargs)
        clock.advance(1.45)  # the hold is in; now the budget is gone
        return hold_id

    monkeypatch.setattr(services.ledger, "place_hold", slow_place_hold)
    request = authorization(amount=100)
    decision = decide(db_session, request, settings(), clock)
    assert not decision.approve and decision.default_used
    assert holds(db_session) == []
    assert ledger.balance(db_session, card.account_id).held == 0
    assert record_for(db_session, request.id).reason == "budget_exceeded"


def test_an_exception_in_a_rule_answers_the_safe_default(db_session, monkeypatch):
    funded_card(db_session, balance=10_000)

    def broken(_facts, _config):
        raise ZeroDivisionError("rule bug")

    monkeypatch.setattr(services.rules, "RULES", (broken,))
    monkeypatch.setattr(services.rules.evaluate, "__defaults__", ((broken,),))
    request = authorization()
    decision = decide(db_session, request, settings(), FakeClock())
    assert not decision.approve and decision.default_used and decision.reason is Reason.ERROR
    record = record_for(db_session, request.id)
    assert record.reason == "error" and "ZeroDivisionError" in record.detail
    assert holds(db_session) == []


def test_a_database_error_answers_the_safe_default(db_session, monkeypatch):
    funded_card(db_session, balance=10_000)

    def bad_query(connection, *_args):
        connection.execute(text("SELECT no_such_column FROM card"))

    monkeypatch.setattr(services, "_usage", bad_query)
    request = authorization()
    decision = decide(db_session, request, settings(), FakeClock())
    assert decision.default_used and decision.reason is Reason.ERROR
    assert "database error" in record_for(db_session, request.id).detail


def test_the_configured_safe_default_is_used(db_session, monkeypatch):
    monkeypatch.setattr(services, "_card_facts", lambda *_a: 1 / 0)
    decision = decide(db_session, authorization(), settings(safe_default=AnswerStatus.SUCCESS),
                      FakeClock())
    assert decision.approve and decision.default_used and holds(db_session) == []


def test_advices_are_refused_by_decide(db_session):
    with pytest.raises(ValueError, match="requests"):
        decide(db_session, authorization(advice=True), settings(), FakeClock())


def test_the_callers_pending_writes_survive_a_failed_decision(db_session, monkeypatch):
    from console.ledger.models import AccountKind

    account = ledger.open_account(db_session, kind=AccountKind.CUSTOMER, name="caller's",
                                  currency="EUR")
    account.name = "changed by the caller"  # pending, not flushed
    monkeypatch.setattr(services, "_card_facts", lambda *_a: 1 / 0)
    decide(db_session, authorization(), settings(), FakeClock())
    db_session.expire_all()
    assert db_session.get(type(account), account.id).name == "changed by the caller"
    assert db_session.scalar(select(func.count()).select_from(DecisionRecord)) == 1


def test_an_approval_on_postgresql_is_seven_round_trips(db_session):
    """The hot path stays a handful of indexed statements (each one is latency)."""
    if db_session.get_bind().dialect.name != "postgresql":
        pytest.skip("round trips are what matter on a networked database")
    from sqlalchemy import event

    funded_card(db_session, balance=10_000)
    save_config(db_session, ADMIN, {"limits": [
        {"scope": "card", "period": "day", "currency": "EUR", "max_amount": 5_000}]},
        reason="exercise every stage")
    decide(db_session, authorization(amount=100), settings(), FakeClock())  # caches the rules
    statements: list[str] = []
    connection = db_session.connection()

    def count(_conn, _cursor, statement, *_args):
        statements.append(statement.split(None, 1)[0])

    event.listen(connection, "before_cursor_execute", count)
    try:
        decision = decide(db_session, authorization(amount=100), settings(), FakeClock())
    finally:
        event.remove(connection, "before_cursor_execute", count)
    assert decision.approve
    # SAVEPOINT+timeout, first reads, card, usage, reserve+hold, record, RELEASE+restore.
    assert len(statements) == 7, statements
