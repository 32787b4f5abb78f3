from sqlalchemy import func, select

from console.audit import Actor
from console.cards.models import Card
from console.demo_seed import OPENING_BALANCE, seed_cards
from console.ledger.services import balance
from console.simulator.cards import seeded_cards


def test_seeding_creates_the_simulators_cards_with_funded_accounts_once(db_session):
    actor = Actor.cli("demo")
    assert seed_cards(db_session, actor, seed=3, count=12) == 12
    assert seed_cards(db_session, actor, seed=3, count=12) == 0  # idempotent
    book = {c.token_id: c for c in seeded_cards(3, 12)}
    cards = db_session.scalars(select(Card)).all()
    assert {c.token_id for c in cards} == set(book)
    first = next(c for c in cards if c.token_id == seeded_cards(3, 1)[0].token_id)
    assert first.status == "active" and first.masked_number == book[first.token_id].card_number
    assert balance(db_session, first.account_id).available == OPENING_BALANCE
    assert db_session.scalar(select(func.count(Card.id))) == 12
