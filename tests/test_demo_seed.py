import itertools

from sqlalchemy import func, select

from console.audit import Actor
from console.cards.models import Card
from console.demo_seed import OPENING_BALANCE, seed_cards
from console.ledger.services import balance
from console.simulator.scenarios import SCENARIOS, CardScript, run_book, work_items


def test_seeding_creates_the_simulators_run_book_with_funded_accounts_once(db_session):
    actor = Actor.cli("demo")
    book = {c.token_id: c for c in run_book(3, 12).cards()}
    assert seed_cards(db_session, actor, seed=3, count=12) == len(book)
    assert seed_cards(db_session, actor, seed=3, count=12) == 0  # idempotent
    cards = db_session.scalars(select(Card)).all()
    assert {c.token_id for c in cards} == set(book)
    first = next(c for c in cards if c.token_id == run_book(3, 12).cards()[0].token_id)
    assert first.status == "active" and first.masked_number == book[first.token_id].card_number
    assert balance(db_session, first.account_id).available == OPENING_BALANCE
    assert db_session.scalar(select(func.count(Card.id))) == len(book)


def test_every_card_the_demos_steady_run_sends_for_exists_after_seeding(db_session):
    """The demo seeds and simulates with the steady scenario's defaults: before the seed and the
    runner shared one book, 9 of the 50 scripted cards were unknown to the console."""
    cards = SCENARIOS["steady"].cards
    seed_cards(db_session, Actor.cli("demo"), seed=1, count=cards)
    known = set(db_session.scalars(select(Card.token_id)))
    items = work_items("steady", run_book(1, cards), seed=1, run_id="seedcheck")
    # Steady cycles over its cards for ever: three rounds cover every card it scripts.
    scripts = [i for i in itertools.islice(items, 3 * cards) if isinstance(i, CardScript)]
    sent_for = {step.body["token_id"] for script in scripts for step in script.steps}
    assert len(sent_for) == cards
    assert sorted(sent_for - known) == []


def test_seeding_sets_the_rules_the_scripted_declines_expect_once(db_session):
    from console.decisioning.config import LimitPeriod, LimitScope, active_config
    from console.simulator.scenarios import DEMO_TRANSACTION_LIMIT, DEMO_VELOCITY_MAX

    actor = Actor.cli("demo")
    seed_cards(db_session, actor, seed=3, count=12)
    config = active_config(db_session)
    for currency in {c.currency for c in run_book(3, 12).cards()}:
        assert config.limit(LimitScope.CARD, LimitPeriod.TRANSACTION, currency,
                            "any-card") == DEMO_TRANSACTION_LIMIT
    assert config.velocity_enabled and config.velocity_max == DEMO_VELOCITY_MAX
    seed_cards(db_session, actor, seed=3, count=12)
    assert active_config(db_session).version == config.version  # no new version when in place
