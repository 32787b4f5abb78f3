"""FINCI's twelve sandbox steps (FINCI.md, "Go-live validation") as data: what to send, and how
to judge the console's database afterwards.

Each step has a card of its own (created by the run, funded with :data:`OPENING_BALANCE`), so one
step's holds, limits and velocity never touch another's. ``drive`` builds the messages with the
simulator's :class:`~console.simulator.scenarios.ScriptBuilder` and plays them through the run's
sender; ``judge`` reads :class:`Facts` and returns ``None`` for a pass or the exact reason it
failed, phrased for FINCI's reviewer ("no advice received within 60 s").

The timeout-safe decline is FINCI's side of a timeout: our approval reaches FINCI after its
3 s (here: the sender asks normally, then sends the advice FINCI would send after missing our
answer, ``InsufficientFunds``), and the console must converge to that: hold released, nothing
posted, the divergence recorded. (A 1 ms sender deadline does not do: the request then never
reaches the console at all, and the step would prove nothing.) The console's own budget (answer the
safe default past 1.5 s) cannot be forced from outside a running console; its tests cover it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Final, Protocol

from console.finci.contract import ResponseCode, TokenStage, TokenStatus
from console.simulator.scenarios import Answer, Delivery, ScriptBuilder, Step, StepKind

OPENING_BALANCE: Final = 500_00  # minor units on each step's card
# Within the demo's per-transaction limit (1 000.00) and the opening balance.
SMALL_AMOUNT: Final = 12_34
ANSWER_DEADLINE_MS: Final = 3000.0
DUPLICATE_COPIES: Final = 3


class Failed(Exception):
    """A judgement's reason (the message is the reason shown in the report)."""


class Driver(Protocol):
    builder: ScriptBuilder
    wait_s: float

    def play(self, *steps: Step) -> dict[str, str]: ...
    def ask_then_advise(self, step: Step, response_code: str) -> str: ...
    def settle(self) -> None: ...


@dataclass
class Facts:
    """What one step sent, what came back, and what the console's database holds after it."""

    steps: list[Step]
    wait_s: float
    card: dict[str, Any] | None
    messages: dict[str, dict[str, Any]]
    decisions: dict[str, dict[str, Any]]
    holds: dict[str, dict[str, Any]]
    ledger: list[dict[str, Any]]
    transactions: list[dict[str, Any]]
    exchanges: list[dict[str, Any]]
    run_cards: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    audit: list[dict[str, Any]] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)

    # --- helpers the judgements share -----------------------------------------------------

    def authorizations(self) -> list[Step]:
        return [s for s in self.steps if s.kind is StepKind.AUTHORIZATION]

    def message(self, webhook_id: str | None, what: str) -> dict[str, Any]:
        found = self.messages.get(webhook_id or "")
        if found is None:
            raise Failed(f"no {what} received within {self.wait_s:g} s")
        if found["status"] != "processed":
            raise Failed(f"the {what} was stored but not processed within {self.wait_s:g} s "
                         f"(status {found['status']})")
        return found

    def decision(self, step: Step) -> dict[str, Any]:
        found = self.decisions.get(step.message_id)
        if found is None:
            raise Failed(f"no decision recorded for authorization {step.message_id}")
        return found

    def answers(self, webhook_id: str) -> list[dict[str, Any]]:
        return [e for e in self.exchanges if e["webhook_id"] == webhook_id]

    def charges(self) -> list[dict[str, Any]]:
        """Postings on the card's account other than the opening funding."""
        return [e for e in self.ledger if e["kind"] != "funding"]

    def balance(self) -> int | None:
        account = (self.card or {}).get("account")
        return None if account is None else account["posted_balance"]


@dataclass(frozen=True)
class Scenario:
    number: int
    name: str
    title: str
    drive: Callable[[Driver], None]
    judge: Callable[[Facts], None]  # raises Failed
    status: TokenStatus = TokenStatus.ACTIVE
    stage: TokenStage = TokenStage.DIGITAL

    @property
    def slug(self) -> str:
        return f"{self.number:02d}-{self.name}"


def judge(scenario: Scenario, facts: Facts) -> str | None:
    """``None`` when the step passed, else the reason it failed."""
    try:
        scenario.judge(facts)
    except Failed as failed:
        return str(failed)
    return None


# --- shared checks ------------------------------------------------------------------------


def _answered(facts: Facts, step: Step, expected: Answer) -> dict[str, Any]:
    exchanges = facts.answers(step.webhook_id)
    if not exchanges:
        raise Failed(f"authorization request {step.message_id} was never sent")
    first = exchanges[0]
    if first["status"] is None:
        raise Failed(f"no answer to authorization request {step.message_id}")
    if first["latency_ms"] > ANSWER_DEADLINE_MS:
        raise Failed(f"answered in {first['latency_ms']:.0f} ms, past FINCI's 3 s deadline")
    if first["status"] != 200 or first["answer"] != expected.value:
        raise Failed(f"answered HTTP {first['status']} {first['answer']!r}; expected HTTP 200 "
                     f"{expected.value!r}")
    stored = facts.message(step.webhook_id, "authorization request")
    if stored["answer_body"].get("status") != expected.value:
        raise Failed(f"the console recorded answer {stored['answer_body']!r}, not what it sent")
    return stored


def _advice(facts: Facts, step: Step, code: ResponseCode | str) -> dict[str, Any]:
    stored = facts.message(step.advice_webhook_id, "advice")
    decision = facts.decision(step)
    if decision["advice_response_code"] != str(code):
        raise Failed(f"the advice was not applied: the decision shows response code "
                     f"{decision['advice_response_code']!r}, FINCI sent {str(code)!r}")
    if decision["advice_message_id"] != stored["id"]:
        raise Failed("the decision does not point at the advice message")
    return decision


def _no_open_hold(facts: Facts, step: Step) -> None:
    hold = facts.holds.get(step.message_id)
    if hold is not None and hold["status"] == "open":
        raise Failed(f"a hold of {hold['amount']} is still open for {step.message_id}")


def _postings(facts: Facts, kind: str, count: int) -> list[dict[str, Any]]:
    found = [e for e in facts.charges() if e["kind"] == kind]
    if len(found) != count:
        raise Failed(f"expected {count} {kind} posting(s) on the card's account, found "
                     f"{len(found)}")
    return found


def _transaction_state(facts: Facts, *states: str) -> dict[str, Any]:
    if len(facts.transactions) != 1:
        raise Failed(f"expected one transaction, found {len(facts.transactions)}")
    found = facts.transactions[0]["transaction"]
    if found["state"] not in states:
        raise Failed(f"transaction state is {found['state']!r}, expected "
                     + " or ".join(repr(s) for s in states))
    return found


def _balance(facts: Facts, expected: int) -> None:
    if facts.balance() != expected:
        raise Failed(f"the card's account balance is {facts.balance()}, expected {expected}")


# --- the twelve steps ------------------------------------------------------------------------


def _drive_nothing(_driver: Driver) -> None:
    return None


def _judge_records(facts: Facts) -> None:
    missing = [token for token, card in facts.run_cards.items() if card is None]
    if missing:
        raise Failed(f"{len(missing)} card record(s) missing, e.g. {missing[0]}")
    for token, card in facts.run_cards.items():
        account = card["account"]  # type: ignore[index]
        if account is None:
            raise Failed(f"card {token} has no ledger account")
        if account["posted_balance"] != OPENING_BALANCE:
            raise Failed(f"card {token} opened with {account['posted_balance']}, expected "
                         f"{OPENING_BALANCE}")
    if not any(e["action"] == "system.evidence_records.create" for e in facts.audit):
        raise Failed("no audit event records the creation of the cards")


def _drive_issue(driver: Driver) -> None:
    driver.play(driver.builder.card_status(TokenStatus.ACTIVE, TokenStage.DIGITAL))


def _judge_issue(facts: Facts) -> None:
    (step,) = facts.steps
    facts.message(step.webhook_id, "card status message")
    card = facts.card or {}
    if card.get("status") != TokenStatus.ACTIVE.value:
        raise Failed(f"the card is {card.get('status')!r} after FINCI announced it active")
    if not any(c["to"] == "active" and c["source"] == "webhook"
               for c in card.get("status_changes", [])):
        raise Failed("no status change from FINCI's webhook is recorded for the card")


def _drive_authorize(driver: Driver) -> None:
    driver.play(driver.builder.authorize(SMALL_AMOUNT))


def _judge_received(facts: Facts) -> None:
    (step,) = facts.authorizations()
    stored = _answered(facts, step, Answer.SUCCESS)
    if stored["type"] != "authorization" or stored["advice"] is not False:
        raise Failed("the request was not stored as an authorization request")
    if len(stored["deliveries"]) != 1 or not stored["deliveries"][0]["headers"]:
        raise Failed("the delivery and its headers were not recorded")
    decision = facts.decision(step)
    if not decision["rule_trace"] or decision["total_ms"] is None:
        raise Failed("the decision has no rule trace or latency")


def _judge_approve(facts: Facts) -> None:
    (step,) = facts.authorizations()
    _answered(facts, step, Answer.SUCCESS)
    decision = _advice(facts, step, ResponseCode.APPROVED)
    if decision["advice_outcome"] != "approved_as_answered":
        raise Failed(f"advice outcome is {decision['advice_outcome']!r}")
    hold = facts.holds.get(step.message_id)
    if hold is None or hold["status"] != "open" or hold["amount"] != SMALL_AMOUNT:
        raise Failed(f"expected an open hold of {SMALL_AMOUNT}, found {hold!r}")
    _transaction_state(facts, "approved")


def _drive_decline(driver: Driver) -> None:
    driver.play(driver.builder.authorize(OPENING_BALANCE + SMALL_AMOUNT))


def _judge_decline(facts: Facts) -> None:
    (step,) = facts.authorizations()
    _answered(facts, step, Answer.ERROR)
    decision = _advice(facts, step, ResponseCode.INSUFFICIENT_FUNDS)
    if decision["advice_outcome"] != "declined_as_answered":
        raise Failed(f"advice outcome is {decision['advice_outcome']!r}")
    if step.message_id in facts.holds:
        raise Failed("a hold was placed for a declined authorization")
    if facts.charges():
        raise Failed(f"{len(facts.charges())} posting(s) for a declined authorization")
    _transaction_state(facts, "declined")


def _judge_advice(facts: Facts) -> None:
    (step,) = facts.authorizations()
    request = facts.message(step.webhook_id, "authorization request")
    advice = facts.message(step.advice_webhook_id, "advice")
    if advice["finci_id"] != request["finci_id"] or advice["advice"] is not True:
        raise Failed("the advice was not stored as the advice of the same authorization")
    if advice["webhook_id"] == request["webhook_id"]:
        raise Failed("request and advice were stored as one message")
    _advice(facts, step, ResponseCode.APPROVED)
    state = _transaction_state(facts, "approved")
    if state["response_code"] != ResponseCode.APPROVED.value:
        raise Failed(f"the transaction shows response code {state['response_code']!r}")


def _drive_timeout(driver: Driver) -> None:
    # Our approval reached FINCI too late: FINCI declined and says so in the advice.
    driver.ask_then_advise(driver.builder.authorize(SMALL_AMOUNT),
                           ResponseCode.INSUFFICIENT_FUNDS.value)


def _judge_timeout(facts: Facts) -> None:
    (step,) = facts.authorizations()
    _answered(facts, step, Answer.SUCCESS)
    decision = _advice(facts, step, ResponseCode.INSUFFICIENT_FUNDS)
    if decision["advice_outcome"] not in ("timeout", "finci_declined"):
        raise Failed(f"FINCI declined after the timeout but the decision reads "
                     f"{decision['advice_outcome']!r}")
    if decision["hold_action"] != "released":
        raise Failed(f"the hold was not released after FINCI's decline "
                     f"(hold action {decision['hold_action']!r})")
    _no_open_hold(facts, step)
    if facts.charges():
        raise Failed(f"{len(facts.charges())} posting(s) after a timeout decline")
    _balance(facts, OPENING_BALANCE)
    _transaction_state(facts, "declined")


def _drive_duplicates(driver: Driver) -> None:
    copies = Delivery(copies=DUPLICATE_COPIES)
    builder = driver.builder
    auth = builder.authorize(SMALL_AMOUNT)
    presentment = builder.follow_up(StepKind.PRESENTMENT, SMALL_AMOUNT, auth)
    driver.play(replace(auth, delivery=copies, advice_delivery=copies),
                replace(presentment, delivery=copies))


def _judge_duplicates(facts: Facts) -> None:
    auth, presentment = facts.steps
    for webhook_id, what in ((auth.webhook_id, "authorization request"),
                             (auth.advice_webhook_id, "advice"),
                             (presentment.webhook_id, "presentment")):
        stored = facts.message(webhook_id, what)
        count = len(stored["deliveries"])
        if count != DUPLICATE_COPIES:
            raise Failed(f"the {what} was delivered {DUPLICATE_COPIES} times but the console "
                         f"recorded {count} deliveries")
    answers = {(e["status"], e["answer"]) for e in facts.answers(auth.webhook_id)}
    if len(answers) != 1:
        raise Failed(f"repeated deliveries of one request got different answers: "
                     f"{sorted(map(str, answers))}")
    postings = [e for e in facts.charges() if e["kind"] == "presentment"]
    if len(postings) != 1:
        raise Failed(f"the duplicate delivery was applied {len(postings)} times: "
                     f"{len(postings)} postings" if postings else
                     "the presentment was never posted")
    _balance(facts, OPENING_BALANCE - SMALL_AMOUNT)


def _drive_clearing(driver: Driver) -> None:
    builder = driver.builder
    auth = builder.authorize(SMALL_AMOUNT)
    driver.play(auth, builder.follow_up(StepKind.PRESENTMENT, SMALL_AMOUNT, auth))


def _judge_clearing(facts: Facts) -> None:
    auth, presentment = facts.steps
    facts.message(presentment.webhook_id, "presentment")
    (posting,) = _postings(facts, "presentment", 1)
    if posting["amount"] != -SMALL_AMOUNT:
        raise Failed(f"the presentment posted {posting['amount']}, expected {-SMALL_AMOUNT}")
    hold = facts.holds.get(auth.message_id)
    if hold is None or hold["status"] != "converted":
        raise Failed(f"the hold was not converted by the clearing: {hold!r}")
    _balance(facts, OPENING_BALANCE - SMALL_AMOUNT)
    _transaction_state(facts, "posted")


def _drive_reversal(driver: Driver) -> None:
    builder = driver.builder
    auth = builder.authorize(SMALL_AMOUNT)
    driver.play(auth, builder.follow_up(StepKind.REVERSAL, SMALL_AMOUNT, auth))


def _judge_reversal(facts: Facts) -> None:
    auth, reversal = facts.steps
    facts.message(reversal.webhook_id, "reversal")
    hold = facts.holds.get(auth.message_id)
    if hold is None or hold["status"] != "released":
        raise Failed(f"the reversal did not release the hold: {hold!r}")
    if facts.charges():
        raise Failed(f"{len(facts.charges())} posting(s) for a reversed authorization")
    _balance(facts, OPENING_BALANCE)
    _transaction_state(facts, "reversed")


def _drive_refund(driver: Driver) -> None:
    builder = driver.builder
    auth = builder.authorize(SMALL_AMOUNT)
    driver.play(auth, builder.follow_up(StepKind.PRESENTMENT, SMALL_AMOUNT, auth),
                builder.follow_up(StepKind.REFUND, SMALL_AMOUNT, auth))


def _judge_refund(facts: Facts) -> None:
    _auth, _presentment, refund = facts.steps
    facts.message(refund.webhook_id, "refund")
    _postings(facts, "presentment", 1)
    (credit,) = _postings(facts, "refund", 1)
    if credit["amount"] != SMALL_AMOUNT:
        raise Failed(f"the refund credited {credit['amount']}, expected {SMALL_AMOUNT}")
    _balance(facts, OPENING_BALANCE)
    _transaction_state(facts, "refunded")


def _drive_status(driver: Driver) -> None:
    builder = driver.builder
    driver.play(builder.card_status(TokenStatus.DEACTIVATED))
    driver.settle()  # the status must be applied before FINCI asks about the card again
    driver.play(builder.authorize(SMALL_AMOUNT, expect=Answer.ERROR))


def _judge_status(facts: Facts) -> None:
    change, auth = facts.steps
    facts.message(change.webhook_id, "card status message")
    card = facts.card or {}
    if card.get("status") != TokenStatus.DEACTIVATED.value:
        raise Failed(f"the card is {card.get('status')!r} after FINCI deactivated it")
    if not any(c["from"] == "active" and c["to"] == "deactivated"
               for c in card.get("status_changes", [])):
        raise Failed("no active → deactivated change is recorded for the card")
    _answered(facts, auth, Answer.ERROR)
    _no_open_hold(facts, auth)


SCENARIOS: Final[tuple[Scenario, ...]] = (
    Scenario(1, "records-created", "Records created: cards with funded accounts",
             _drive_nothing, _judge_records),
    Scenario(2, "card-issued", "Card issued: FINCI announces the new card active",
             _drive_issue, _judge_issue, status=TokenStatus.NEW,
             stage=TokenStage.PLASTIC_NOT_DELIVERED),
    Scenario(3, "authorization-received", "Authorization webhook received, verified, stored",
             _drive_authorize, _judge_received),
    Scenario(4, "approve", "Approve: answered success in time, hold placed",
             _drive_authorize, _judge_approve),
    Scenario(5, "decline", "Decline: over the balance, answered error, no hold",
             _drive_decline, _judge_decline),
    Scenario(6, "advice", "Advice: FINCI's outcome stored and compared with our answer",
             _drive_authorize, _judge_advice),
    Scenario(7, "timeout-safe-decline",
             "Timeout-safe decline: FINCI stopped waiting and declined; the hold is released",
             _drive_timeout, _judge_timeout),
    Scenario(8, "repeated-delivery", "Repeated delivery handled once",
             _drive_duplicates, _judge_duplicates),
    Scenario(9, "clearing", "Clearing (presentment) posted against the hold",
             _drive_clearing, _judge_clearing),
    Scenario(10, "reversal", "Reversal releases the hold", _drive_reversal, _judge_reversal),
    Scenario(11, "refund", "Return (refund) credited", _drive_refund, _judge_refund),
    Scenario(12, "card-status-change", "Card status change applied; the card then declines",
             _drive_status, _judge_status),
)
