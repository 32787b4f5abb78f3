from __future__ import annotations

import pytest

from console.cards.services import issue_funded_card
from console.finci.contract import TokenStage, TokenStatus
from console.simulator.card_api_server import CardApiServer
from console.simulator.cards import CardBook, SimCard
from console.transactions.settings import LifecycleSettings
from tests.transactions.support import (
    ledger_stays_balanced,  # noqa: F401 - autouse
    new_id,
)

API_TOKEN = "cards-test-token"
API_SECRET = "cards-test-secret-0123456789"




def sim_card(token_id: str, status=TokenStatus.ACTIVE, **fields) -> SimCard:
    values = dict(token_id=token_id, embossing_name="GRACE HOPPER",
                  card_number="5454-54**-****-1234", expiration_date="2030-06",
                  product_id="prod_debit_eur", currency="EUR", token_status=status,
                  token_stage=TokenStage.DIGITAL, person_id="100001")
    values.update(fields)
    return SimCard(**values)


@pytest.fixture
def token_id() -> str:
    return new_id("tok")


@pytest.fixture
def book(token_id):
    """FINCI's side: the test card, and a second card of the same person not yet known here."""
    return CardBook([sim_card(token_id), sim_card(new_id("tok"), card_number="5454-54**-****-9876",
                                                  product_id="prod_prepaid_gbp", currency="GBP")])


@pytest.fixture
def finci(book):
    with CardApiServer(book, API_TOKEN, API_SECRET) as server:
        yield server


@pytest.fixture
def lifecycle(finci):
    return LifecycleSettings(api_base_url=finci.url, api_token=API_TOKEN, api_secret=API_SECRET,
                             card_action_max_attempts=3)


@pytest.fixture
def card(db_session, book, token_id):
    """The active card, known to both FINCI's book and the console."""
    local = issue_funded_card(db_session, token_id=token_id, balance=5_000)
    local.person_id = book.get(token_id).person_id
    local.masked_number = book.get(token_id).card_number
    db_session.commit()
    return local
