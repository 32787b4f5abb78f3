"""`flask --app wsgi demo seed`: load the simulator's card book into the console (sandbox only).

The simulator plays FINCI; the console keeps its own card records and balances. For a demo
(or a rehearsal) the two must know the same cards, so this creates each card of the book a
`simulate … --seed S --cards N` run uses (``scenarios.run_book``, the one definition both
sides read) with a funded customer account: every card that run scripts is among them.
"""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy.orm import Session

from console.audit import Actor, AuditAction, record
from console.cards.services import card_by_token, issue_funded_card
from console.decisioning.config import active_config, save_config
from console.simulator.scenarios import (
    DEMO_OPENING_BALANCE,
    DEMO_TRANSACTION_LIMIT,
    DEMO_VELOCITY_MAX,
    SCENARIOS,
    run_book,
)

OPENING_BALANCE = DEMO_OPENING_BALANCE


def seed_cards(session: Session, actor: Actor, *, seed: int, count: int,
               balance: int = OPENING_BALANCE) -> int:
    """Create the cards of the book a run with ``--seed seed --cards count`` uses that the
    console does not know yet; return how many were new."""
    created = 0
    book = run_book(seed, count)
    _seed_rules(session, actor, {sim.currency for sim in book.cards()})
    for sim in book.cards():
        if card_by_token(session, sim.token_id) is not None:
            continue
        card = issue_funded_card(session, token_id=sim.token_id, currency=sim.currency,
                                 balance=balance, status=sim.token_status, posted_by=actor.id)
        card.masked_number = sim.card_number
        card.stage = sim.token_stage.value
        card.person_id, card.corporate_id = sim.person_id, sim.corporate_id
        card.employee_id, card.product_id = sim.employee_id, sim.product_id
        created += 1
    session.flush()
    record(session, actor=actor, action=AuditAction.DEMO_DATA_SEED,
           details={"seed": seed, "cards": count, "created": created})
    return created


def _seed_rules(session: Session, actor: Actor, currencies: set[str]) -> None:
    """The rules the steady scenario's scripted declines expect: a per-transaction card limit in
    every card currency and the velocity limit (saved as a new version only when missing)."""
    current = active_config(session).as_document()
    limits = {(row["scope"], row["period"], row["currency"], row.get("target"))
              for row in current["limits"]}
    wanted = [{"scope": "card", "period": "transaction", "currency": currency,
               "max_amount": DEMO_TRANSACTION_LIMIT} for currency in sorted(currencies)
              if ("card", "transaction", currency, None) not in limits]
    document = {**current, "limits": [*current["limits"], *wanted], "balance_enabled": True,
                "limits_enabled": True, "velocity_enabled": True,
                "velocity_max": DEMO_VELOCITY_MAX}
    if document == current:
        return
    save_config(session, actor, document,
                reason="demo seed: the limits the simulator's scripted declines expect")


@click.group("demo", cls=AppGroup, help="Demo and rehearsal data (sandbox only).")
def demo_group():
    pass


@demo_group.command("seed", help="Create the simulator's cards with funded accounts.")
@click.option("--seed", default=1, show_default=True, help="The simulator's --seed.")
@click.option("--cards", "count", default=SCENARIOS["steady"].cards, show_default=True,
              type=click.IntRange(1, 10_000), help="The simulator's --cards.")
@click.option("--json", "as_json", is_flag=True)
def seed_command(seed: int, count: int, as_json: bool):
    from console.cli import cli_actor, emit
    from console.unit_of_work import database

    if current_app.extensions["settings"].is_production:
        raise click.ClickException("demo data is never loaded into production")
    with database().transaction() as session:
        created = seed_cards(session, cli_actor(), seed=seed, count=count)
    emit(as_json, {"seed": seed, "cards": count, "created": created},
         f"{created} new demo cards (the book of a run with --seed {seed} --cards {count})")
