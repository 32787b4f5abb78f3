"""JWE decryption (FINCI.md B.5): by kid, only active keys, only RSA-OAEP-256 + A256GCM."""

from __future__ import annotations

import logging

import pytest
from joserfc import jwe as jose_jwe
from joserfc.jwk import RSAKey

from console.keys import card_data_keys, jwe
from tests.conftest import REVEAL_TEST_PAN
from tests.keys.card_data.conftest import ACTOR, card_payload, new_key

OTHER_PAN = "5555555555554444"


def _decrypt(db_session, store, token, environment="sandbox"):
    return jwe.decrypt(db_session, store, token, environment=environment)


def test_round_trip_with_two_active_keys(db_session, store):
    old, new = new_key(db_session, store), new_key(db_session, store)
    for key, number in ((old, REVEAL_TEST_PAN), (new, OTHER_PAN)):
        token = jwe.encrypt_for(key.public_pem, key.kid, card_payload(number))
        assert jwe.card_number(_decrypt(db_session, store, token)) == (number, "2029-04")
        assert key.last_used_at is not None


def _refusal(db_session, store, token) -> str:
    with pytest.raises(jwe.CardDataRefused) as refused:
        _decrypt(db_session, store, token)
    return refused.value.reason


def test_retired_and_revoked_keys_are_refused(db_session, store):
    old, new = new_key(db_session, store), new_key(db_session, store)
    old_token = jwe.encrypt_for(old.public_pem, old.kid, card_payload())
    new_token = jwe.encrypt_for(new.public_pem, new.kid, card_payload())
    card_data_keys.retire(db_session, old.kid, environment="sandbox", actor=ACTOR,
                          reason="rotation finished")
    assert _refusal(db_session, store, old_token) == "key_retired"
    assert _decrypt(db_session, store, new_token)  # the other key still decrypts
    card_data_keys.revoke(db_session, store, new.kid, environment="sandbox", actor=ACTOR,
                          reason="key compromised")
    assert _refusal(db_session, store, new_token) == "key_revoked"


def test_pending_unknown_and_other_environment_keys_are_refused(db_session, store):
    pending = new_key(db_session, store, active=False)
    assert _refusal(db_session, store, jwe.encrypt_for(
        pending.public_pem, pending.kid, card_payload())) == "key_pending"
    assert _refusal(db_session, store, jwe.encrypt_for(
        pending.public_pem, "cd-sandbox-unknown", card_payload())) == "kid_unknown"
    production = new_key(db_session, store, environment="production")
    assert _refusal(db_session, store, jwe.encrypt_for(
        production.public_pem, production.kid, card_payload())) == "kid_unknown"


def _encrypt(public_pem, header, plaintext=b"{}"):
    registry = jose_jwe.JWERegistry(algorithms=[header["alg"], header["enc"]])
    return jose_jwe.encrypt_compact(header, plaintext, RSAKey.import_key(public_pem),
                                    registry=registry)


@pytest.mark.parametrize("alg, enc, reason", [
    ("RSA-OAEP", "A256GCM", "algorithm_refused"),
    ("RSA-OAEP-256", "A128GCM", "encryption_refused"),
    ("RSA-OAEP-256", "A256CBC-HS512", "encryption_refused"),
])
def test_other_algorithms_are_refused(db_session, store, alg, enc, reason):
    key = new_key(db_session, store)
    token = _encrypt(key.public_pem, {"alg": alg, "enc": enc, "kid": key.kid})
    assert _refusal(db_session, store, token) == reason


def test_a_token_for_another_key_or_tampered_is_undecryptable(db_session, store):
    key, stranger = new_key(db_session, store), new_key(db_session, store, active=False)
    # Encrypted to a key we do not hold for that kid.
    forged = jwe.encrypt_for(stranger.public_pem, key.kid, card_payload())
    assert _refusal(db_session, store, forged) == "undecryptable"
    token = jwe.encrypt_for(key.public_pem, key.kid, card_payload())
    head, wrapped, iv, ciphertext, tag = token.split(".")
    flipped = ("A" if tag[0] != "A" else "B") + tag[1:]
    assert _refusal(db_session, store, ".".join((head, wrapped, iv, ciphertext, flipped))) \
        == "undecryptable"


@pytest.mark.parametrize("token", ["", "a.b.c", "a.b.c.d.e", "é.b.c.d.e", "x" * 9000,
                                   "eyJhbGciOiJub25lIn0.b.c.d.e"])
def test_malformed_tokens_are_refused(db_session, store, token):
    assert _refusal(db_session, store, token) in ("malformed", "algorithm_refused")


def test_a_missing_private_key_fails_closed(db_session, store):
    key = new_key(db_session, store)
    store.delete(key.secret_name)
    assert _refusal(db_session, store, jwe.encrypt_for(
        key.public_pem, key.kid, card_payload())) == "key_unavailable"


def test_decryption_logs_nothing_of_the_plaintext(db_session, store, caplog):
    key = new_key(db_session, store)
    token = jwe.encrypt_for(key.public_pem, key.kid, card_payload())
    with caplog.at_level(logging.DEBUG):
        plaintext = _decrypt(db_session, store, token)
        _refusal(db_session, store, token[:-4] + "AAAA")
    assert REVEAL_TEST_PAN.encode() in plaintext
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert REVEAL_TEST_PAN not in logged and REVEAL_TEST_PAN[-10:] not in logged


@pytest.mark.parametrize("payload", [b"not json", b"[]", b'{"card_number": 4000056655665556}',
                                     b'{"card_number": "12ab"}', b'{"card_number": "123"}'])
def test_unreadable_payloads_are_refused(payload):
    with pytest.raises(jwe.CardDataRefused):
        jwe.card_number(payload)


def test_a_token_without_kid_is_refused(db_session, store):
    key = new_key(db_session, store)
    token = _encrypt(key.public_pem, {"alg": "RSA-OAEP-256", "enc": "A256GCM"})
    assert _refusal(db_session, store, token) == "kid_missing"
