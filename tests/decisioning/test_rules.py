"""The rule table, driven by tables: each row is facts + configuration → expected results."""

from __future__ import annotations

import datetime as dt

import pytest

from console.decisioning.config import (
    DEFAULT,
    LimitPeriod,
    LimitRule,
    LimitScope,
    RuleConfig,
)
from console.decisioning.models import Reason
from console.decisioning.rules import RULES, CardFacts, Facts, Usage, evaluate

CARD = CardFacts(card_id=1, token_id="tok_1", status="active", currency="EUR", account_id=7,
                 account_currency="EUR", posted=10_000, held=2_000)


def facts(**changes) -> Facts:
    values = dict(amount=1_000, currency="EUR", mcc="5411", country="DE", card=CARD,
                  usage=Usage())
    values.update(changes)
    return Facts(**values)


def card(**changes) -> CardFacts:
    values = {f: getattr(CARD, f) for f in CARD.__slots__}
    values.update(changes)
    return CardFacts(**values)


def limits(*rows: tuple) -> RuleConfig:
    return RuleConfig(limits=tuple(
        LimitRule(LimitScope(r[0]), LimitPeriod(r[1]), r[2], r[3], r[4] if len(r) > 4 else None)
        for r in rows))


# (case, facts, config, approved, reason, failing rule)
CASES = [
    ("all good", facts(), DEFAULT, True, Reason.APPROVED, None),
    ("unknown card", facts(card=None), DEFAULT, False, Reason.CARD_UNKNOWN, "card_known"),
    *[(f"card {status}", facts(card=card(status=status)), DEFAULT, False,
       Reason.CARD_NOT_ACTIVE, "card_active")
      for status in ("new", "blocked", "closed", "compromized", "damaged", "deactivated",
                     "lost", "referral", "stolen", "something-new")],
    ("no account", facts(card=card(account_id=None, account_currency=None)), DEFAULT, False,
     Reason.NO_ACCOUNT, "account_linked"),
    ("other currency", facts(currency="USD"), DEFAULT, False, Reason.CURRENCY_MISMATCH,
     "currency"),
    ("exactly the available balance", facts(amount=8_000), DEFAULT, True, Reason.APPROVED, None),
    ("one cent over available", facts(amount=8_001), DEFAULT, False, Reason.INSUFFICIENT_FUNDS,
     "balance"),
    ("overdrawn account", facts(amount=1, card=card(posted=-5)), DEFAULT, False,
     Reason.INSUFFICIENT_FUNDS, "balance"),
    ("zero amount (account check)", facts(amount=0), DEFAULT, True, Reason.APPROVED, None),
    ("balance rule off", facts(amount=9_999_999), RuleConfig(balance_enabled=False), True,
     Reason.APPROVED, None),
    ("card transaction limit", facts(amount=501), limits(("card", "transaction", "EUR", 500)),
     False, Reason.LIMIT_EXCEEDED, "limit.card.transaction"),
    ("card transaction limit exactly", facts(amount=500),
     limits(("card", "transaction", "EUR", 500)), True, Reason.APPROVED, None),
    ("limit in another currency does not apply", facts(amount=5_000),
     limits(("card", "transaction", "USD", 500)), True, Reason.APPROVED, None),
    ("card daily limit", facts(amount=1_000, usage=Usage(card_day=4_500)),
     limits(("card", "day", "EUR", 5_000)), False, Reason.LIMIT_EXCEEDED, "limit.card.day"),
    ("card daily limit reached exactly", facts(amount=500, usage=Usage(card_day=4_500)),
     limits(("card", "day", "EUR", 5_000)), True, Reason.APPROVED, None),
    ("card monthly limit", facts(usage=Usage(card_month=49_500)),
     limits(("card", "month", "EUR", 50_000)), False, Reason.LIMIT_EXCEEDED, "limit.card.month"),
    ("account transaction limit", facts(amount=2_000),
     limits(("account", "transaction", "EUR", 1_999)), False, Reason.LIMIT_EXCEEDED,
     "limit.account.transaction"),
    ("account daily limit", facts(usage=Usage(account_day=9_500)),
     limits(("account", "day", "EUR", 10_000)), False, Reason.LIMIT_EXCEEDED,
     "limit.account.day"),
    ("account monthly limit", facts(usage=Usage(account_month=99_001)),
     limits(("account", "month", "EUR", 100_000)), False, Reason.LIMIT_EXCEEDED,
     "limit.account.month"),
    ("a card's own limit overrides the general one", facts(amount=2_000),
     limits(("card", "transaction", "EUR", 500), ("card", "transaction", "EUR", 5_000, "tok_1")),
     True, Reason.APPROVED, None),
    ("another card's override does not apply", facts(amount=2_000),
     limits(("card", "transaction", "EUR", 500), ("card", "transaction", "EUR", 5_000, "tok_2")),
     False, Reason.LIMIT_EXCEEDED, "limit.card.transaction"),
    ("an account's own limit", facts(amount=2_000),
     limits(("account", "transaction", "EUR", 1_000, "7")), False, Reason.LIMIT_EXCEEDED,
     "limit.account.transaction"),
    ("limits switched off", facts(amount=2_000),
     RuleConfig(limits_enabled=False, limits=limits(("card", "transaction", "EUR", 1)).limits),
     True, Reason.APPROVED, None),
    ("blocked MCC", facts(mcc="7995"), RuleConfig(blocked_mccs=frozenset({"7995"})), False,
     Reason.MCC_BLOCKED, "mcc"),
    ("MCC rule off", facts(mcc="7995"),
     RuleConfig(mcc_enabled=False, blocked_mccs=frozenset({"7995"})), True, Reason.APPROVED,
     None),
    ("no MCC in the request", facts(mcc=None), RuleConfig(blocked_mccs=frozenset({"7995"})),
     True, Reason.APPROVED, None),
    ("blocked country", facts(country="KP"), RuleConfig(blocked_countries=frozenset({"KP"})),
     False, Reason.COUNTRY_BLOCKED, "country"),
    ("country rule off", facts(country="KP"),
     RuleConfig(country_enabled=False, blocked_countries=frozenset({"KP"})), True,
     Reason.APPROVED, None),
    ("velocity: the last allowed request", facts(usage=Usage(card_recent_requests=2)),
     RuleConfig(velocity_max=3), True, Reason.APPROVED, None),
    ("velocity: one too many", facts(usage=Usage(card_recent_requests=3)),
     RuleConfig(velocity_max=3), False, Reason.VELOCITY, "velocity"),
    ("velocity off", facts(usage=Usage(card_recent_requests=300)),
     RuleConfig(velocity_max=3, velocity_enabled=False), True, Reason.APPROVED, None),
    # Several failures: the reason is the first in table order, the trace shows them all.
    ("inactive card and no money", facts(amount=50_000, card=card(status="lost")), DEFAULT,
     False, Reason.CARD_NOT_ACTIVE, "card_active"),
    ("blocked MCC and no money", facts(amount=50_000, mcc="7995"),
     RuleConfig(blocked_mccs=frozenset({"7995"})), False, Reason.INSUFFICIENT_FUNDS, "balance"),
]


@pytest.mark.parametrize(("case", "facts_", "config", "approved", "reason", "failing"),
                         CASES, ids=[c[0] for c in CASES])
def test_rule_table(case, facts_, config, approved, reason, failing):
    evaluation = evaluate(facts_, config)
    assert evaluation.approved is approved
    assert evaluation.reason is reason
    assert (evaluation.failed.name if evaluation.failed else None) == failing


def test_every_rule_appears_in_the_trace_with_a_result():
    trace = evaluate(facts(), DEFAULT).trace()
    assert len(trace) == len(RULES)
    names = [t["rule"] for t in trace]
    assert names[:5] == ["card_known", "card_active", "account_linked", "currency", "balance"]
    assert {"limit.card.day", "limit.account.month", "mcc", "country", "velocity"} <= set(names)
    assert all(t["passed"] in (True, False, None) and t["detail"] for t in trace)


def test_rules_that_do_not_apply_say_so_instead_of_passing():
    trace = {t["rule"]: t for t in evaluate(facts(card=None), DEFAULT).trace()}
    assert trace["card_known"]["passed"] is False
    assert trace["balance"]["passed"] is None
    assert trace["limit.card.day"]["passed"] is None


def test_both_failures_are_in_the_trace_when_several_rules_fail():
    evaluation = evaluate(facts(amount=50_000, mcc="7995"),
                          RuleConfig(blocked_mccs=frozenset({"7995"})))
    failed = [r.name for r in evaluation.results if r.passed is False]
    assert failed == ["balance", "mcc"]


def test_day_and_month_windows_follow_the_configured_timezone():
    config = RuleConfig(timezone="Europe/Berlin")
    now = dt.datetime(2026, 11, 30, 23, 30, tzinfo=dt.UTC)  # already 1 December in Berlin
    day, month = config.windows(now)
    assert day == dt.datetime(2026, 11, 30, 23, 0, tzinfo=dt.UTC)
    assert month == day
    utc_day, utc_month = DEFAULT.windows(now)
    assert utc_day == dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
    assert utc_month == dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
