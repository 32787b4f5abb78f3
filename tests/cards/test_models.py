"""Cards hold a masked number at most, a known status, and a unique token."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from console.cards.services import card_by_token, create_card


def test_a_masked_number_is_kept(db_session):
    create_card(db_session, token_id="tok_m", currency="EUR",
                masked_number="5555-55**-****-4444")
    assert card_by_token(db_session, "tok_m").masked_number == "5555-55**-****-4444"


@pytest.mark.parametrize("number", ["5555555555554444", "5555-5555-5555-4444",
                                    "5555-55**-****-44444", ""],
                         ids=["full", "full-dashed", "too-long", "empty"])
def test_anything_but_a_masked_number_is_refused(db_session, number):
    with pytest.raises(ValueError, match="masked"):
        create_card(db_session, token_id="tok_x", currency="EUR", masked_number=number)


@pytest.mark.parametrize(("field", "value"), [("status", "frozen"), ("currency", "eur")])
def test_unknown_status_or_bad_currency_is_refused(db_session, field, value):
    values = {"token_id": "tok_y", "currency": "EUR", field: value}
    with pytest.raises(ValueError):
        create_card(db_session, **values)


def test_a_token_belongs_to_one_card(db_session):
    create_card(db_session, token_id="tok_z", currency="EUR")
    with pytest.raises(IntegrityError), db_session.begin_nested():
        create_card(db_session, token_id="tok_z", currency="EUR")
