"""The cached set ingress verifies against: loads once, reloads in the background, survives a
failed reload, and refuses stored values it cannot trust."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from console.audit.services import Actor
from console.finci.webhook_signature import WebhookSecret
from console.keys.inventory import InventoryError, Kind
from console.keys.models import Credential
from console.keys.webhook_secrets import WebhookSecretSet, add_webhook_secret, store_name
from console.secrets.local import LocalKeystore
from console.secrets.store import SecretStoreError

ACTOR = Actor.cli("oncall")
A = WebhookSecret(b"set-secret-a-0123456789abcdefghij")
B = WebhookSecret(b"set-secret-b-0123456789abcdefghij")
NOW = dt.datetime.now(dt.UTC)


class Monotonic:
    value = 0.0

    def __call__(self):
        return self.value


@pytest.fixture
def store(tmp_path):
    return LocalKeystore(tmp_path / "ks", b"m" * 32)


def _add(db_session, store, secret, environment="sandbox", configured=()):
    credential = add_webhook_secret(db_session, store, ACTOR, value=secret.export(),
                                    environment=environment, configured=configured, at=NOW,
                                    reason="test", overlap=dt.timedelta(hours=1))
    db_session.flush()
    return credential


def _set(test_database, store, clock=None):
    return WebhookSecretSet("sandbox", store, test_database.session, cache_seconds=30,
                            monotonic=clock or Monotonic())


def test_reloads_in_the_background_after_the_cache_period(test_database, db_session, store):
    clock = Monotonic()
    secrets = _set(test_database, store, clock)
    assert secrets.accepted((), NOW.timestamp()) == ()
    _add(db_session, store, A)
    assert secrets.accepted((), NOW.timestamp()) == ()  # cached
    clock.value = 31
    secrets.accepted((), NOW.timestamp())  # starts the reload, answers from the cache
    for thread in threading.enumerate():
        if thread.name == "webhook-secrets-refresh":
            thread.join(5)
    assert secrets.accepted((), NOW.timestamp()) == (A,)


def test_a_failed_reload_keeps_the_previous_set(test_database, db_session, store):
    _add(db_session, store, A)
    secrets = _set(test_database, store)
    assert secrets.accepted((), NOW.timestamp()) == (A,)

    def broken():
        raise RuntimeError("database down")

    secrets.session_factory = broken
    secrets.invalidate()
    assert secrets.accepted((B,), NOW.timestamp()) == (B, A)


def test_first_load_failing_falls_back_to_the_configured_secrets(store):
    def broken():
        raise RuntimeError("database down")

    secrets = WebhookSecretSet("sandbox", store, broken)
    assert secrets.accepted((A,), NOW.timestamp()) == (A,)


def test_stored_values_that_cannot_be_trusted_are_refused(test_database, db_session, store,
                                                          caplog):
    credential = _add(db_session, store, A)
    store.put(credential.store_name, B.export().encode())  # swapped behind the inventory
    assert _set(test_database, store).accepted((), NOW.timestamp()) == ()
    assert "another fingerprint" in caplog.text
    store.delete(credential.store_name)
    assert _set(test_database, store).accepted((), NOW.timestamp()) == ()
    assert _set(test_database, None).accepted((), NOW.timestamp()) == ()
    assert "no store is configured" in caplog.text
    assert A.export() not in caplog.text and B.export() not in caplog.text


def test_add_refuses_duplicates_published_and_weak_secrets_and_store_errors(db_session, store):
    _add(db_session, store, A)
    with pytest.raises(InventoryError, match="already in the inventory"):
        _add(db_session, store, A)
    with pytest.raises(InventoryError, match="published test secret"):
        add_webhook_secret(db_session, store, ACTOR,
                           value="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                           environment="production", configured=(), at=NOW, reason="x",
                           overlap=dt.timedelta(hours=1))
    with pytest.raises(InventoryError, match="not random"):
        add_webhook_secret(db_session, store, ACTOR, value=WebhookSecret(bytes(32)).export(),
                           environment="production", configured=(), at=NOW, reason="x",
                           overlap=dt.timedelta(hours=1))

    class Refusing:
        kind = "vault"

        def put(self, name, value):
            raise SecretStoreError("Vault is unreachable (ConnectionError)")

    with pytest.raises(InventoryError, match="refused the new secret: Vault is unreachable"):
        _add(db_session, Refusing(), B)
    assert {c.fingerprint for c in db_session.query(Credential)} == {A.fingerprint}


def test_adding_records_the_configured_ones_and_retires_them_after_the_overlap(
        test_database, db_session, store):
    _add(db_session, store, B, configured=(A,))
    rows = {c.fingerprint: c for c in db_session.query(Credential)}
    assert rows[A.fingerprint].status == "retiring" and rows[A.fingerprint].store_name is None
    assert rows[B.fingerprint].store_name == store_name("sandbox", B.fingerprint)
    secrets = _set(test_database, store)
    assert secrets.accepted((A,), NOW.timestamp()) == (A, B)
    assert secrets.accepted((A,), (NOW + dt.timedelta(hours=1, seconds=1)).timestamp()) == (B,)
    assert rows[B.fingerprint].kind == Kind.WEBHOOK_SECRET.value
