"""Card-data key lifecycle: private key only in the store, two active at most, audited."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from console.audit.models import AuditEvent
from console.keys import card_data_keys as keys
from console.keys.card_data_models import CardDataKey
from console.secrets.memory import MemorySecretStore
from console.secrets.store import SecretStoreError
from tests.keys.card_data.conftest import ACTOR, new_key


def _audit(db_session, action):
    return db_session.scalars(select(AuditEvent).where(AuditEvent.action == action)
                              .order_by(AuditEvent.seq)).all()


def test_generate_keeps_the_private_key_only_in_the_store(db_session, store):
    key = keys.generate(db_session, store, environment="sandbox", actor=ACTOR)
    assert key.status == "pending" and key.bits == 3072 and key.kid.startswith("cd-sandbox-")
    assert store.names() == [f"card-data/keys/{key.kid}"]
    private = serialization.load_pem_private_key(store.get(key.secret_name), password=None)
    assert store.get(key.secret_name).startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS8
    public = private.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    assert key.public_pem == public.decode() and key.fingerprint == keys.spki_fingerprint(public)
    # Nothing private in the row, nor in the audit event.
    row = db_session.execute(text("SELECT * FROM card_data_key")).one()
    assert not any("PRIVATE" in str(value) for value in row)
    (event,) = _audit(db_session, "keys.card_data.generate")
    assert event.target_id == key.kid and "PRIVATE" not in event.details
    assert json.loads(event.details)["fingerprint"] == key.fingerprint


@pytest.mark.parametrize("bits", [2048, 3071, 16384])
def test_generate_refuses_weak_or_absurd_sizes(db_session, store, bits):
    with pytest.raises(keys.CardDataKeyError):
        keys.generate(db_session, store, environment="sandbox", actor=ACTOR, bits=bits)
    assert store.names() == []


def test_a_failed_insert_leaves_no_private_key_behind(db_session, store, monkeypatch):
    def broken(*_args, **_kwargs):
        raise RuntimeError("audit write failed")

    monkeypatch.setattr(keys, "record", broken)
    with pytest.raises(RuntimeError):
        keys.generate(db_session, store, environment="sandbox", actor=ACTOR)
    assert store.names() == []


def test_two_keys_may_be_active_not_three(db_session, store):
    new_key(db_session, store)
    new_key(db_session, store)
    third = new_key(db_session, store, active=False)
    with pytest.raises(keys.CardDataKeyError, match="retire one first"):
        keys.activate(db_session, third.kid, environment="sandbox", actor=ACTOR)
    assert [k.status for k in keys.list_keys(db_session, "sandbox")].count("active") == 2


def test_retire_and_revoke_need_a_reason_and_are_audited(db_session, store):
    key = new_key(db_session, store)
    with pytest.raises(keys.CardDataKeyError, match="reason"):
        keys.retire(db_session, key.kid, environment="sandbox", actor=ACTOR, reason=" ")
    keys.retire(db_session, key.kid, environment="sandbox", actor=ACTOR, reason="rotated out")
    assert key.status == "retired" and store.names()  # retired: the private key is kept
    with pytest.raises(keys.CardDataKeyError):
        keys.activate(db_session, key.kid, environment="sandbox", actor=ACTOR)
    keys.revoke(db_session, store, key.kid, environment="sandbox", actor=ACTOR,
                reason="laptop stolen")
    assert key.status == "revoked" and key.revoked_at and store.names() == []
    with pytest.raises(keys.CardDataKeyError, match="revoked already"):
        keys.revoke(db_session, store, key.kid, environment="sandbox", actor=ACTOR,
                    reason="again, to be sure")
    (retired,) = _audit(db_session, "keys.card_data.retire")
    (revoked,) = _audit(db_session, "keys.card_data.revoke")
    assert json.loads(retired.details)["reason"] == "rotated out"
    assert json.loads(revoked.details)["changes"]["status"] == {"before": "retired",
                                                                "after": "revoked"}


def test_a_key_of_the_other_environment_is_unknown(db_session, store):
    key = new_key(db_session, store, environment="production")
    with pytest.raises(keys.UnknownKey):
        keys.retire(db_session, key.kid, environment="sandbox", actor=ACTOR, reason="not mine")
    assert keys.list_keys(db_session, "sandbox") == []


def test_the_database_refuses_a_short_key(db_session, store):
    key = new_key(db_session, store)
    key.bits = 2048
    with pytest.raises(IntegrityError):
        db_session.flush()
    db_session.rollback()
    assert db_session.scalar(select(CardDataKey.id)) is None


def test_the_memory_store_is_refused_in_production():
    with pytest.raises(SecretStoreError):
        MemorySecretStore(production=True)
    assert "secret" in repr(MemorySecretStore())


def test_no_store_configured_is_a_clear_error(app):
    app.extensions.pop("secrets.store", None)
    with pytest.raises(SecretStoreError, match="no secret store"):
        keys.configured_store(app)


def test_a_retired_key_cannot_be_retired_again(db_session, store):
    key = new_key(db_session, store)
    keys.retire(db_session, key.kid, environment="sandbox", actor=ACTOR, reason="rotated out")
    with pytest.raises(keys.CardDataKeyError, match="retired already"):
        keys.retire(db_session, key.kid, environment="sandbox", actor=ACTOR, reason="again now")


def test_the_memory_store_takes_bytes_only(store):
    with pytest.raises(TypeError):
        store.put("card-data/keys/x", "text")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        store.put("../escape", b"x")
