"""Card-data keys, JWE and reveal: an in-memory secret store wired into the app, a pool of RSA
keys (3072-bit generation costs a second each; the pool hands out distinct real keys), a card
with FINCI's encrypted card data, and people who may reveal it."""

from __future__ import annotations

import itertools
import json
import types

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from console.audit import Actor
from console.auth.models import User
from console.cards.models import Card
from console.keys import card_data_keys, jwe, reveal
from console.secrets.memory import MemorySecretStore
from tests.conftest import REVEAL_TEST_PAN

ACTOR = Actor.cli("keys-test")
_POOL: list[rsa.RSAPrivateKey] = []
_counter = itertools.count(1)


def _pooled(n: int) -> rsa.RSAPrivateKey:
    while len(_POOL) <= n:
        _POOL.append(rsa.generate_private_key(public_exponent=65537, key_size=3072))
    return _POOL[n]


@pytest.fixture(autouse=True)
def fast_keys(monkeypatch):
    """``generate`` draws from the pool: distinct keys within a test, real 3072-bit RSA."""
    handed = itertools.count()

    def generate_private_key(*, public_exponent: int, key_size: int):
        assert public_exponent == 65537 and key_size >= 3072
        return _pooled(next(handed))

    monkeypatch.setattr(card_data_keys, "rsa", types.SimpleNamespace(
        generate_private_key=generate_private_key))


@pytest.fixture
def store() -> MemorySecretStore:
    return MemorySecretStore()


@pytest.fixture
def app(app, store):
    app.extensions["secrets.store"] = store
    return app


def new_key(session, store, *, active: bool = True, environment: str = "sandbox"):
    key = card_data_keys.generate(session, store, environment=environment, actor=ACTOR)
    if active:
        card_data_keys.activate(session, key.kid, environment=environment, actor=ACTOR)
    return key


def card_payload(number: str = REVEAL_TEST_PAN) -> bytes:
    return json.dumps({"card_number": number, "expiration_date": "2029-04"}).encode()


def add_card(session, key, number: str = REVEAL_TEST_PAN) -> Card:
    card = Card(token_id=f"tok-reveal-{next(_counter)}", status="active", currency="EUR",
                masked_number=f"{number[:4]}-{number[4:6]}**-****-{number[-4:]}")
    session.add(card)
    session.flush()
    reveal.store_envelope(session, card, jwe.encrypt_for(key.public_pem, key.kid,
                                                         card_payload(number)))
    return card


def allow_reveal(db_session, client):
    db_session.get(User, client.user_id).reveal_card_data = True
    db_session.commit()
    return client
