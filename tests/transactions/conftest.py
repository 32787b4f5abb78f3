from __future__ import annotations

import pytest

from console.cards.services import issue_funded_card
from console.transactions.settings import LifecycleSettings
from tests.transactions.support import (
    Bodies,
    Driver,
    ledger_stays_balanced,  # noqa: F401 - autouse
    new_id,
)


@pytest.fixture
def lifecycle():
    return LifecycleSettings()


@pytest.fixture
def driver(test_database, db_session, lifecycle):
    return Driver(test_database, db_session, lifecycle)


@pytest.fixture
def card(db_session):
    """An active EUR card with 100.00 on its own account."""
    return issue_funded_card(db_session, token_id=new_id("tok"), currency="EUR",
                             balance=100_000)


@pytest.fixture
def bodies(card):
    return Bodies(card.token_id)
