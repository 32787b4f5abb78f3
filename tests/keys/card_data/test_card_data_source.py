"""Where card data comes from: FINCI's get-cards items (B.5), as the simulator sends them."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from console.audit import Actor
from console.cards import actions
from console.cards.models import Card
from console.cards.refresh import refresh_cards
from console.finci import card_api
from console.keys import jwe, reveal
from console.keys.card_data_models import CardDataEnvelope
from console.security.redaction import luhn_valid, mask_pan
from console.simulator.card_api_server import CardApiServer
from console.simulator.card_data import RegisteredKey, made_up_number
from console.simulator.cards import CardBook
from console.transactions.settings import LifecycleSettings
from tests.cards.conftest import API_SECRET, API_TOKEN, sim_card
from tests.keys.card_data.conftest import card_payload, new_key


def _refresh(test_database, server):
    settings = LifecycleSettings(api_base_url=server.url, api_token=API_TOKEN,
                                 api_secret=API_SECRET, refresh_owners=(("person", "100001"),))
    return refresh_cards(test_database.transaction,
                         actions.card_api_client(settings, sleep=lambda _s: None), settings,
                         Actor.system("scheduler"))


def test_refresh_keeps_the_encrypted_card_data_finci_sends(test_database, db_session, store):
    key = new_key(db_session, store)
    db_session.commit()
    book = CardBook([sim_card("tok_withdata", person_id="100001")])
    token = jwe.encrypt_for(key.public_pem, key.kid, card_payload())
    with CardApiServer(book, API_TOKEN, API_SECRET, card_data=lambda _card: token) as server:
        report = _refresh(test_database, server)
    assert (report.card_data, report.card_data_refused) == (1, 0)
    db_session.expire_all()
    card = db_session.scalar(select(Card).where(Card.token_id == "tok_withdata"))
    envelope = reveal.envelope_for(db_session, card)
    assert envelope.kid == key.kid and envelope.token == token  # ciphertext only


def test_card_data_under_another_algorithm_is_not_kept(test_database, db_session, store):
    book = CardBook([sim_card("tok_baddata", person_id="100001")])
    with CardApiServer(book, API_TOKEN, API_SECRET, card_data=lambda _card: "a.b.c") as server:
        report = _refresh(test_database, server)
    assert (report.card_data, report.card_data_refused) == (0, 1)
    assert db_session.scalar(select(CardDataEnvelope)) is None


@pytest.mark.parametrize("value", [17, "x" * 9000, "é"])
def test_the_client_refuses_a_card_data_field_of_the_wrong_shape(value):
    item = {"token_id": "tok_x", "embossing_name": "A B", "card_number": "5200-00**-****-1234",
            "expiration_date": "2029-01", "product_id": "p", "encrypted_card_data": value}
    with pytest.raises(card_api.CardApiError) as error:
        card_api._card(item, 0)
    assert error.value.errors == ("items[0].encrypted_card_data",)


def test_the_simulator_encrypts_a_made_up_number_to_the_registered_key(db_session, store):
    key = new_key(db_session, store)
    card = sim_card("tok_sim", person_id="100001")
    token = RegisteredKey(key.kid, key.public_pem).encrypt(card)
    number, expiry = jwe.card_number(jwe.decrypt(db_session, store, token,
                                                 environment="sandbox"))
    assert luhn_valid(number) and expiry == card.expiration_date
    assert mask_pan(number)[:6] + mask_pan(number)[-4:] == \
        card.card_number.replace("-", "").replace("*", "")
    assert "kid" in json.dumps(jwe.header(token)) and repr(RegisteredKey(key.kid, "x")) \
        == f"RegisteredKey({key.kid})"


@pytest.mark.parametrize("masked", ["5200-00**-****-1234", "5454-54**-****-9876",
                                    "2223-00**-****-0000"])
def test_made_up_numbers_keep_the_visible_digits_and_pass_luhn(masked):
    number = made_up_number(masked)
    assert luhn_valid(number) and number[:6] + number[-4:] == masked.replace("-", "")[:6] + \
        masked[-4:]
