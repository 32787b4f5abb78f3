"""Any order, any duplication of one card's messages converges to the in-order result.

Scripts come from the simulator's per-card generators (its happy-path stories, and a denser mix
of partial reversals, split and partial presentments, refunds, orphans and FINCI declines written
with its ScriptBuilder). Each example runs the script twice on two identical cards: once in
FINCI's order, once permuted with duplicate deliveries (same webhook-id, or a new one), through
the real ingress (decisioning answers the requests) and the real pipeline worker and handlers.
Transactions, postings, holds, the card's account and the card itself must end the same.
"""

from __future__ import annotations

import datetime as dt
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from console.cards.models import Card
from console.cards.services import issue_funded_card
from console.finci.contract import ResponseCode, TokenStage, TokenStatus
from console.ledger.models import Hold, HoldStatus, LedgerAccount, LedgerEntry, LedgerJournal
from console.simulator.cards import SimCard
from console.simulator.scenarios import (
    FINCI_OWN_DECLINE_CODE,
    Answer,
    CardScript,
    Ids,
    ScriptBuilder,
    StepKind,
    advice_body,
    happy_card_script,
    message_body,
)
from console.transactions.models import CardTransaction, TransactionPosting
from tests.support.ids import letters
from tests.transactions.support import T0, Driver

FUNDS = 10_000_000


def lifecycle_card_script(card: SimCard, rng: random.Random, ids: Ids) -> CardScript:
    """Two or three stories from the whole lifecycle, denser than the happy path."""
    script = ScriptBuilder(card, rng, ids)
    for _ in range(rng.randint(2, 3)):
        story = rng.choice(["partial_reversal", "split", "refund", "orphan_refund",
                            "declined", "finci_declined", "offline", "suspension", "over_hold"])
        if story == "partial_reversal":
            auth = script.authorize(script.amount(2_000, 9_000))
            part = rng.randint(1, auth.body["amount"] - 1)
            script.follow_up(StepKind.REVERSAL, part, auth)
            script.follow_up(StepKind.PRESENTMENT, auth.body["amount"] - part, auth)
        elif story == "split":
            auth = script.authorize(script.amount(2_000, 9_000))
            first = rng.randint(1, auth.body["amount"] // 2)
            script.follow_up(StepKind.PRESENTMENT, first, auth)
            script.follow_up(StepKind.PRESENTMENT, auth.body["amount"] - first, auth)
        elif story == "refund":
            auth = script.authorize(script.amount())
            script.follow_up(StepKind.PRESENTMENT, auth.body["amount"], auth)
            script.follow_up(StepKind.REFUND, rng.randint(1, auth.body["amount"]), auth)
        elif story == "orphan_refund":
            script.follow_up(StepKind.REFUND, script.amount(100, 900), None,
                             authorization_id=ids.next("auth") + "unseen")
        elif story == "declined":
            # ``expect=ERROR``: FINCI's advice says InsufficientFunds (e.g. our answer was late).
            script.authorize(script.amount(), expect=Answer.ERROR)
        elif story == "finci_declined":
            script.finci_advice(script.amount(), FINCI_OWN_DECLINE_CODE)
        elif story == "over_hold":
            # Half again the authorization: beyond the 10% tolerance, a posting failure.
            auth = script.authorize(script.amount(1_000, 5_000))
            script.follow_up(StepKind.PRESENTMENT, auth.body["amount"] * 3 // 2, auth)
        elif story == "offline":
            script.follow_up(StepKind.PRESENTMENT, script.amount(), None)
        else:
            script.card_status(TokenStatus.DEACTIVATED)
            script.card_status(TokenStatus.ACTIVE, TokenStage.PLASTIC_DELIVERED)
    return script.done()


GENERATORS = {"happy": happy_card_script, "lifecycle": lifecycle_card_script}


def sim_card(token_id: str) -> SimCard:
    return SimCard(token_id=token_id, embossing_name="ADA LOVELACE",
                   card_number="5200-00**-****-0042", expiration_date="2030-01",
                   product_id="prod_debit_eur", currency="EUR", token_status=TokenStatus.ACTIVE,
                   token_stage=TokenStage.PLASTIC_NOT_DELIVERED)


def bodies_of(script: CardScript) -> list[dict]:
    """Every message of the script in FINCI's order, a second apart."""
    bodies = []
    moment = T0
    for step in script.steps:
        moment += dt.timedelta(seconds=1)
        bodies.append(message_body(step, moment))
        if step.kind is StepKind.AUTHORIZATION:
            moment += dt.timedelta(seconds=1)
            code = (ResponseCode.INSUFFICIENT_FUNDS if step.expect is Answer.ERROR
                    else ResponseCode.APPROVED)
            bodies.append(advice_body(step, code.value, moment))
    return bodies


def snapshot(session, token_id: str, run_id: str) -> dict:
    """The final state of one card's run, with run-specific ids normalised away."""
    def norm(value):
        return value.replace(run_id, "RUN").replace(token_id, "TOKEN") if value else value

    session.expire_all()
    card = session.scalar(select(Card).where(Card.token_id == token_id))
    transactions = session.scalars(select(CardTransaction)
                                   .where(CardTransaction.token_id == token_id)).all()
    ids = [t.id for t in transactions]
    account = session.get(LedgerAccount, card.account_id)
    return {
        "card": (card.status, card.stage),
        "transactions": sorted(
            (norm(t.link_key), t.state, t.authorized_amount, t.reversed_amount,
             t.cleared_amount, t.refunded_amount, t.awaiting_authorization, t.failed_postings)
            for t in transactions),
        "postings": sorted(
            (norm(p.finci_id), p.kind, p.status, p.reason, p.amount)
            for p in session.scalars(select(TransactionPosting)
                                     .where(TransactionPosting.transaction_id.in_(ids)))),
        # Reservations only: a released hold and no hold reserve the same nothing.
        "holds": sorted(
            (norm(h.authorization_id), h.status,
             h.amount if h.status == HoldStatus.OPEN.value else None)
            for h in session.scalars(select(Hold).where(Hold.card_id == card.id))
            if h.status != HoldStatus.RELEASED.value),
        "account": (account.posted_balance, account.held_amount),
        "entries": sorted(
            (norm(reference), amount) for reference, amount in session.execute(
                select(LedgerJournal.reference, LedgerEntry.amount)
                .join(LedgerEntry, LedgerEntry.journal_id == LedgerJournal.id)
                .where(LedgerEntry.account_id == card.account_id,
                       LedgerJournal.kind != "funding"))),
    }


def run_id() -> str:
    """Fresh for every run (examples repeat seeds, and Hypothesis reseeds ``random``)."""
    return letters(10)


@st.composite
def deliveries(draw, count: int) -> tuple[list[tuple[int, bool]], bool]:
    """An arrival order: a permutation, up to three extra copies (``True``: a new webhook-id
    for the same message), and whether the worker runs after each delivery or once at the end."""
    order = [(index, False) for index in draw(st.permutations(range(count)))]
    for _ in range(draw(st.integers(0, 3))):
        copy = (draw(st.integers(0, count - 1)), draw(st.booleans()))
        order.insert(draw(st.integers(0, len(order))), copy)
    return order, draw(st.booleans())


@settings(max_examples=10, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data(), seed=st.integers(0, 2**32 - 1),
       generator=st.sampled_from(sorted(GENERATORS)))
def test_any_order_and_duplication_converges_to_the_in_order_result(
        test_database, db_session, data, seed, generator):
    runs = []
    for label in ("in_order", "shuffled"):
        token_id = f"tok_{run_id()}"
        rid = run_id()
        issue_funded_card(db_session, token_id=token_id, balance=FUNDS)
        db_session.commit()
        script = GENERATORS[generator](sim_card(token_id), random.Random(seed), Ids(rid))
        runs.append((label, token_id, rid, bodies_of(script)))

    (_, in_token, in_rid, in_bodies), (_, sh_token, sh_rid, sh_bodies) = runs
    driver = Driver(test_database, db_session)
    driver.run(*in_bodies)
    expected = snapshot(db_session, in_token, in_rid)

    order, step_by_step = data.draw(deliveries(len(sh_bodies)), label="arrival")
    for index, new_webhook_id in order:
        if new_webhook_id:
            driver.deliver(sh_bodies[index], webhook_id=f"msg_again_{run_id()}")
        else:
            driver.deliver(sh_bodies[index])
        if step_by_step:
            driver.process()
    driver.process()
    assert snapshot(db_session, sh_token, sh_rid) == expected
