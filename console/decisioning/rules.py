"""The authorization rules: pure functions over facts gathered once, evaluated as a table.

Every rule returns a ``RuleResult(name, passed, detail)``; ``passed`` is ``None`` when the rule
does not apply (switched off, no limit configured, nothing to check against). All rules run, so
the decision record shows the full picture; the answer is a decline with the reason of the first
failing rule in table order (the order puts card facts first, then money, then merchant).

No rule reads the database or the clock: ``services.decide`` gathers ``Facts`` in a few indexed
reads and these functions only compare, which keeps them trivially testable and fast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from console.decisioning.config import LimitPeriod, LimitScope, RuleConfig
from console.decisioning.models import Reason
from console.finci.card_status import can_approve
from console.ledger.money import format_minor


@dataclass(frozen=True, slots=True)
class CardFacts:
    card_id: int
    token_id: str
    status: str
    currency: str
    account_id: int | None
    account_currency: str | None
    posted: int = 0
    held: int = 0

    @property
    def available(self) -> int:
        return self.posted - self.held


@dataclass(frozen=True, slots=True)
class Usage:
    """What the card and its account have already spent, and recent request count."""

    card_day: int = 0
    card_month: int = 0
    account_day: int = 0
    account_month: int = 0
    # Authorization requests for this card within the velocity window, before this one.
    card_recent_requests: int = 0


@dataclass(frozen=True, slots=True)
class Facts:
    amount: int
    currency: str
    mcc: str | None
    country: str | None
    card: CardFacts | None
    usage: Usage | None = None  # None when no enabled rule needed it


@dataclass(frozen=True, slots=True)
class RuleResult:
    name: str
    passed: bool | None
    detail: str
    reason: Reason | None = None  # the decline reason when this rule fails

    def as_dict(self) -> dict:
        return {"rule": self.name, "passed": self.passed, "detail": self.detail}


Rule = Callable[[Facts, RuleConfig], RuleResult]


def _skip(name: str, detail: str) -> RuleResult:
    return RuleResult(name, None, detail)


def card_known(facts: Facts, _config: RuleConfig) -> RuleResult:
    if facts.card is None:
        return RuleResult("card_known", False, "no card with this token", Reason.CARD_UNKNOWN)
    return RuleResult("card_known", True, "card found")


def card_active(facts: Facts, _config: RuleConfig) -> RuleResult:
    if facts.card is None:
        return _skip("card_active", "no card")
    if not can_approve(facts.card.status):
        return RuleResult("card_active", False, f"card is {facts.card.status}",
                          Reason.CARD_NOT_ACTIVE)
    return RuleResult("card_active", True, "card is active")


def account_linked(facts: Facts, _config: RuleConfig) -> RuleResult:
    if facts.card is None:
        return _skip("account_linked", "no card")
    if facts.card.account_id is None:
        return RuleResult("account_linked", False, "card has no funds account",
                          Reason.NO_ACCOUNT)
    return RuleResult("account_linked", True, f"account {facts.card.account_id}")


def currency_matches(facts: Facts, _config: RuleConfig) -> RuleResult:
    card = facts.card
    if card is None or card.account_currency is None:
        return _skip("currency", "no account")
    if facts.currency != card.account_currency:
        return RuleResult("currency", False,
                          f"request in {facts.currency}, account in {card.account_currency}",
                          Reason.CURRENCY_MISMATCH)
    return RuleResult("currency", True, f"{facts.currency}")


def balance(facts: Facts, config: RuleConfig) -> RuleResult:
    card = facts.card
    if not config.balance_enabled:
        return _skip("balance", "rule switched off")
    if card is None or card.account_currency is None:
        return _skip("balance", "no account")
    if card.account_currency != facts.currency:
        return _skip("balance", "different currency")
    detail = (f"available {format_minor(card.available, card.account_currency)}, "
              f"amount {format_minor(facts.amount, facts.currency)}")
    if facts.amount > card.available:
        return RuleResult("balance", False, detail, Reason.INSUFFICIENT_FUNDS)
    return RuleResult("balance", True, detail)


def spending_limit(scope: LimitScope, period: LimitPeriod) -> Rule:
    name = f"limit.{scope.value}.{period.value}"

    def rule(facts: Facts, config: RuleConfig) -> RuleResult:
        if not config.limits_enabled:
            return _skip(name, "rule switched off")
        card = facts.card
        if card is None:
            return _skip(name, "no card")
        if scope is LimitScope.ACCOUNT and card.account_id is None:
            return _skip(name, "no account")
        target = card.token_id if scope is LimitScope.CARD else str(card.account_id)
        limit = config.limit(scope, period, facts.currency, target)
        if limit is None:
            return _skip(name, f"no {period.value} limit for {facts.currency}")
        if period is LimitPeriod.TRANSACTION:
            spent = 0
        else:
            usage = facts.usage or Usage()
            spent = {
                (LimitScope.CARD, LimitPeriod.DAY): usage.card_day,
                (LimitScope.CARD, LimitPeriod.MONTH): usage.card_month,
                (LimitScope.ACCOUNT, LimitPeriod.DAY): usage.account_day,
                (LimitScope.ACCOUNT, LimitPeriod.MONTH): usage.account_month,
            }[(scope, period)]
        money = facts.currency
        detail = (f"spent {format_minor(spent, money)} + {format_minor(facts.amount, money)} "
                  f"of {format_minor(limit, money)}")
        if spent + facts.amount > limit:
            return RuleResult(name, False, detail, Reason.LIMIT_EXCEEDED)
        return RuleResult(name, True, detail)

    rule.__name__ = name.replace(".", "_")
    return rule


def mcc_allowed(facts: Facts, config: RuleConfig) -> RuleResult:
    if not config.mcc_enabled:
        return _skip("mcc", "rule switched off")
    if facts.mcc is None:
        return _skip("mcc", "no MCC in the request")
    if facts.mcc in config.blocked_mccs:
        return RuleResult("mcc", False, f"MCC {facts.mcc} is blocked", Reason.MCC_BLOCKED)
    return RuleResult("mcc", True, f"MCC {facts.mcc}")


def country_allowed(facts: Facts, config: RuleConfig) -> RuleResult:
    if not config.country_enabled:
        return _skip("country", "rule switched off")
    if facts.country is None:
        return _skip("country", "no merchant country in the request")
    if facts.country in config.blocked_countries:
        return RuleResult("country", False, f"country {facts.country} is blocked",
                          Reason.COUNTRY_BLOCKED)
    return RuleResult("country", True, f"country {facts.country}")


def velocity(facts: Facts, config: RuleConfig) -> RuleResult:
    if not config.velocity_enabled:
        return _skip("velocity", "rule switched off")
    if facts.card is None:
        return _skip("velocity", "no card")
    recent = (facts.usage or Usage()).card_recent_requests + 1
    detail = f"{recent} of {config.velocity_max} requests in {config.velocity_window_s} s"
    if recent > config.velocity_max:
        return RuleResult("velocity", False, detail, Reason.VELOCITY)
    return RuleResult("velocity", True, detail)


RULES: tuple[Rule, ...] = (
    card_known,
    card_active,
    account_linked,
    currency_matches,
    balance,
    *(spending_limit(scope, period) for scope in LimitScope for period in LimitPeriod),
    mcc_allowed,
    country_allowed,
    velocity,
)


@dataclass(frozen=True, slots=True)
class Evaluation:
    results: tuple[RuleResult, ...]

    @property
    def failed(self) -> RuleResult | None:
        return next((r for r in self.results if r.passed is False), None)

    @property
    def approved(self) -> bool:
        return self.failed is None

    @property
    def reason(self) -> Reason:
        failed = self.failed
        return Reason.APPROVED if failed is None else (failed.reason or Reason.ERROR)

    def trace(self) -> list[dict]:
        return [result.as_dict() for result in self.results]


def evaluate(facts: Facts, config: RuleConfig, rules: tuple[Rule, ...] = RULES) -> Evaluation:
    return Evaluation(tuple(rule(facts, config) for rule in rules))
