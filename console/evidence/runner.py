"""One evidence run: create the step cards, drive each step through the simulator's sender,
wait for the console to process what it acknowledged, read the facts, judge.

The run reaches the console's database directly (it runs as ``flask --app wsgi evidence run``,
with the console's configuration) to create its cards and to read the evidence, and its ingress
only over HTTP. Processing is the worker's job: the run waits up to ``wait_s`` per step for
every message to be processed. ``drain`` (the CLI's ``--drain``) applies the inbox from this
process while waiting, for a console that runs no worker.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from console.audit import Actor, AuditAction, Outcome, Target, record
from console.cards.services import issue_funded_card
from console.db import Database
from console.evidence import collect
from console.evidence.scenarios import OPENING_BALANCE, SCENARIOS, Facts, Scenario, judge
from console.finci import contract
from console.finci.webhook_signature import WebhookSecret
from console.simulator.cards import SimCard, seeded_random
from console.simulator.report import Report
from console.simulator.scenarios import (
    CardScript,
    Ids,
    ScriptBuilder,
    Step,
    advice_body,
    encode,
)
from console.simulator.sender import Exchange, RetryPolicy, Sender

DEFAULT_WAIT_S: Final = 60.0
_POLL_S: Final = 0.05
_SECRET_HEADER_WORDS: Final = ("secret", "token", "authorization", "cookie", "key")


def _iso(moment: float | dt.datetime) -> str:
    if isinstance(moment, float | int):
        moment = dt.datetime.fromtimestamp(moment, dt.UTC)
    return moment.isoformat(timespec="milliseconds")


def mask_headers(headers: dict[str, str]) -> dict[str, str]:
    """Headers as sent, with the signature reduced to its versions and anything secret-like
    replaced: the pack must not let a reader replay or forge a delivery."""
    masked = {}
    for name, value in headers.items():
        lower = name.lower()
        if lower == contract.HEADER_WEBHOOK_SIGNATURE:
            versions = [entry.partition(",")[0] for entry in value.split(" ") if entry]
            masked[name] = " ".join(f"{v},<masked>" for v in versions)
        elif any(word in lower for word in _SECRET_HEADER_WORDS):
            masked[name] = "<masked>"
        else:
            masked[name] = value
    return masked


def _decoded(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return {"unreadable": len(data)}


def exchange_record(exchange: Exchange) -> dict[str, Any]:
    answer = _decoded(exchange.body) if exchange.body else None
    return {
        "webhook_id": exchange.webhook_id,
        "sent_at": _iso(exchange.sent_at),
        "request": {"headers": mask_headers(exchange.headers), "body": _decoded(exchange.data)},
        "status": exchange.status,
        "answer": answer.get("status") if isinstance(answer, dict) else None,
        "answer_body": answer,
        "latency_ms": round(exchange.latency_s * 1000, 2),
    }


@dataclass
class StepResult:
    scenario: Scenario
    passed: bool
    reason: str | None
    started_at: str
    finished_at: str
    evidence: dict[str, Any]


@dataclass
class RunResult:
    run_id: str
    started_at: str
    finished_at: str
    steps: list[StepResult] = field(default_factory=list)

    @property
    def passed(self) -> int:
        return sum(1 for s in self.steps if s.passed)

    def summary(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "started_at": self.started_at,
                "finished_at": self.finished_at, "passed": self.passed,
                "failed": len(self.steps) - self.passed,
                "steps": [{"scenario": s.scenario.slug, "passed": s.passed, "reason": s.reason}
                          for s in self.steps]}


def card_for(run_id: str, scenario: Scenario) -> SimCard:
    return SimCard(
        token_id=f"tok_evidence_{run_id}_{scenario.number:02d}",
        embossing_name="EVIDENCE RUN",
        card_number=f"5399-99**-****-{scenario.number:04d}",
        expiration_date="2031-12",
        product_id="prod_evidence",
        currency="EUR",
        token_status=scenario.status,
        token_stage=scenario.stage,
        person_id=f"per_evidence_{run_id}",
    )


class _Driver:
    """What a scenario's ``drive`` sees: a builder for its card, ``play`` and ``settle``."""

    def __init__(self, run: EvidenceRun, scenario: Scenario) -> None:
        self.run = run
        self.card = card_for(run.run_id, scenario)
        self.builder = ScriptBuilder(self.card, seeded_random("evidence", scenario.number),
                                     run.ids)
        self.wait_s = run.wait_s
        self.steps: list[Step] = []
        self.waiting: list[str] = []

    def play(self, *steps: Step) -> dict[str, str]:
        self.steps.extend(steps)
        return self.run.sender.play(CardScript(self.card.token_id, tuple(steps)))

    def ask_then_advise(self, step: Step, response_code: str) -> str:
        """Ask, then send the advice FINCI decided whatever the answer (its side of a timeout:
        the answer arrived too late); return what FINCI read of the answer."""
        self.steps.append(step)
        answer = self.run.sender.ask(step)
        if step.advice_webhook_id is None:  # pragma: no cover - authorize() always sets it
            raise ValueError("an authorization step needs an advice_webhook_id")
        body = advice_body(step, response_code, dt.datetime.now(dt.UTC))
        self.run.sender.deliver(step.advice_webhook_id, encode(body))
        return answer.value

    def webhook_ids(self, *, acknowledged: bool = False) -> list[str]:
        """The step's webhook-ids that were sent (a follow-up of a declined authorization is
        not), or only those the console acknowledged (2xx: stored, so due for processing)."""
        ids = []
        for step in self.steps:
            ids.append(step.webhook_id)
            if step.advice_webhook_id:
                ids.append(step.advice_webhook_id)
        sent = {e["webhook_id"] for e in self.run.exchanges
                if not acknowledged or (e["status"] is not None and 200 <= e["status"] < 300)}
        return [i for i in ids if i in sent]

    def settle(self) -> None:
        # Waiting for a message the console never took would only delay the verdict.
        self.waiting = self.run.settle(self.webhook_ids(acknowledged=True))


class EvidenceRun:
    def __init__(self, database: Database, console_url: str, secret: WebhookSecret, *,
                 actor: Actor, run_id: str, wait_s: float = DEFAULT_WAIT_S,
                 verify: bool | str = True, drain: Callable[[], object] | None = None,
                 scenarios: tuple[Scenario, ...] = SCENARIOS,
                 retry: RetryPolicy | None = None) -> None:
        self.database = database
        self.console_url = console_url
        self.secret = secret
        self.actor = actor
        self.run_id = run_id
        self.wait_s = wait_s
        self.verify = verify
        self.drain = drain
        self.scenarios = scenarios
        self.ids = Ids(run_id)
        self.exchanges: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        deadline = float(contract.AUTHORIZATION_ANSWER_DEADLINE_SECONDS)
        self.sender = Sender(
            console_url, secret, Report(scenario="evidence", seed=0, run_id=run_id,
                                        deadline_s=deadline),
            deadline_s=deadline, retry=retry or RetryPolicy(max_attempts=3, base_s=0.2),
            verify=verify, observer=self._observe)

    def _observe(self, exchange: Exchange) -> None:
        with self._lock:
            self.exchanges.append(exchange_record(exchange))

    def close(self) -> None:
        self.sender.close()

    # --- waiting for the console --------------------------------------------------------------

    def settle(self, webhook_ids: list[str]) -> list[str]:
        """Wait until every message is processed; return the webhook-ids still waiting."""
        deadline = time.monotonic() + self.wait_s
        while True:
            if self.drain is not None:
                self.drain()
            with self.database.transaction() as session:
                done, waiting = collect.settled(session, webhook_ids)
            if done or time.monotonic() >= deadline:
                return waiting
            time.sleep(_POLL_S)

    # --- the run ------------------------------------------------------------------------------

    def create_cards(self) -> list[str]:
        tokens = []
        with self.database.transaction() as session:
            for scenario in self.scenarios:
                sim = card_for(self.run_id, scenario)
                card = issue_funded_card(session, token_id=sim.token_id, currency=sim.currency,
                                         balance=OPENING_BALANCE, status=sim.token_status,
                                         posted_by=self.actor.id)
                card.masked_number = sim.card_number
                card.stage = sim.token_stage.value
                card.person_id, card.product_id = sim.person_id, sim.product_id
                tokens.append(sim.token_id)
            session.flush()
            record(session, actor=self.actor, action=AuditAction.EVIDENCE_RECORDS_CREATE,
                   target=Target("evidence_run", self.run_id),
                   details={"cards": len(tokens), "opening_balance": OPENING_BALANCE})
        return tokens

    def run(self) -> RunResult:
        result = RunResult(self.run_id, _iso(dt.datetime.now(dt.UTC)), "")
        try:
            tokens = self.create_cards()
            for scenario in self.scenarios:
                result.steps.append(self._step(scenario, tokens))
        finally:
            self.close()
        result.finished_at = _iso(dt.datetime.now(dt.UTC))
        with self.database.transaction() as session:
            record(session, actor=self.actor, action=AuditAction.EVIDENCE_RUN,
                   target=Target("evidence_run", self.run_id),
                   outcome=Outcome.SUCCESS if result.passed == len(result.steps)
                   else Outcome.FAILURE, details=result.summary())
        return result

    def _step(self, scenario: Scenario, tokens: list[str]) -> StepResult:
        started = _iso(dt.datetime.now(dt.UTC))
        driver = _Driver(self, scenario)
        first_exchange = len(self.exchanges)
        scenario.drive(driver)
        driver.settle()
        sent = set(driver.webhook_ids())
        exchanges = [e for e in self.exchanges[first_exchange:] if e["webhook_id"] in sent]
        facts = self._facts(scenario, driver, exchanges, tokens)
        reason = judge(scenario, facts)
        finished = _iso(dt.datetime.now(dt.UTC))
        evidence = {
            "scenario": scenario.slug, "title": scenario.title, "run_id": self.run_id,
            "result": "pass" if reason is None else "fail", "reason": reason,
            "started_at": started, "finished_at": finished,
            "card": facts.card,
            "sent": exchanges,
            "received": list(facts.messages.values()),
            "decisions": facts.decisions,
            "holds": facts.holds,
            "transactions": facts.transactions,
            "ledger_postings": facts.ledger,
            "audit_events": facts.audit,
            "still_waiting": facts.waiting,
        }
        if scenario.number == 1:
            evidence["cards"] = facts.run_cards
        return StepResult(scenario, reason is None, reason, started, finished, evidence)

    def _facts(self, scenario: Scenario, driver: _Driver, exchanges: list[dict[str, Any]],
               tokens: list[str]) -> Facts:
        webhook_ids = driver.webhook_ids()
        authorizations = [s.message_id for s in driver.steps]
        with self.database.transaction() as session:
            card = collect.card(session, driver.card.token_id)
            messages = collect.messages(session, webhook_ids)
            message_ids = [m["id"] for m in messages.values()]
            transactions = collect.transactions(session, message_ids)
            account_id = (card or {}).get("account", {}) or {}
            run_cards = ({token: collect.card(session, token) for token in tokens}
                         if scenario.number == 1 else {})
            return Facts(
                steps=driver.steps, wait_s=self.wait_s, card=card, messages=messages,
                decisions=collect.decisions(session, authorizations),
                holds=collect.holds(session, authorizations),
                ledger=collect.ledger_entries(session, account_id.get("id")),
                transactions=transactions, exchanges=exchanges, run_cards=run_cards,
                audit=collect.audit_events(
                    session, token_ids=[driver.card.token_id], message_ids=message_ids,
                    transaction_ids=[t["transaction"]["id"] for t in transactions],
                    run_id=self.run_id if scenario.number == 1 else None),
                waiting=driver.waiting,
            )
