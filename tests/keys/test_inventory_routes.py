"""The inventory on /keys/: badges, calendar, what is in use, and the actions (admins only,
step-up, reason, CSRF, audited; never a secret value in a response)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from sqlalchemy import select

from console.audit.models import AuditEvent
from console.auth.settings import SensitiveAction
from console.finci.webhook_signature import WebhookSecret
from console.keys import inventory
from console.keys.inventory import Kind
from console.keys.models import Credential
from console.secrets.local import LocalKeystore
from tests.keys.conftest import ingress, oidc, use_store

OLD = WebhookSecret(b"routes-old-secret-0123456789abcdef")
NEW = WebhookSecret(b"routes-new-secret-0123456789abcdef")
NEW_VALUE = NEW.export()


@pytest.fixture
def settings(settings):
    auth = dataclasses.replace(oidc(), step_up_actions=frozenset({SensitiveAction.KEYS}))
    return settings.replace(ingress=ingress(OLD.export()), auth=auth)


@pytest.fixture
def store(app, tmp_path):
    return use_store(app, LocalKeystore(tmp_path / "keystore", b"k" * 32))


def _add(client, value=NEW_VALUE, reason="CHG-1 rotation", **form):
    return client.post("/keys/webhook-secrets", data={"csrf_token": client.csrf_token,
                                                      "value": value, "reason": reason, **form})


def test_admin_adds_a_webhook_secret_and_sees_both_in_the_inventory(as_admin, store,
                                                                    db_session):
    response = _add(as_admin, hours="6")
    assert response.status_code == 303 and response.headers["Location"].endswith("/keys/#inventory")
    page = as_admin.get("/keys/").get_data(as_text=True)
    assert NEW.fingerprint in page and OLD.fingerprint in page
    assert 'data-status="retiring"' in page and 'data-status="active"' in page
    assert "stops verifying" in page and 'data-testid="expiry-calendar"' in page
    assert NEW.export() not in page and OLD.export() not in page
    old = inventory.find(db_session, Kind.WEBHOOK_SECRET, OLD.fingerprint, "sandbox")
    assert old.retire_after - old.created_at == dt.timedelta(hours=6)


def test_retire_and_revoke_need_a_reason_and_are_audited(as_admin, store, db_session):
    assert _add(as_admin).status_code == 303
    new = inventory.find(db_session, Kind.WEBHOOK_SECRET, NEW.fingerprint, "sandbox")
    url = f"/keys/credentials/{new.id}/revoke"
    refused = as_admin.post(url, data={"csrf_token": as_admin.csrf_token, "reason": ""})
    assert refused.status_code == 422 and "a reason is required" in refused.get_data(as_text=True)
    db_session.expire_all()
    assert db_session.get(Credential, new.id).status == "active"
    done = as_admin.post(url, data={"csrf_token": as_admin.csrf_token, "reason": "leaked"})
    assert done.status_code == 303
    db_session.expire_all()
    assert db_session.get(Credential, new.id).status == "revoked"
    again = as_admin.post(f"/keys/credentials/{new.id}/activate",
                          data={"csrf_token": as_admin.csrf_token, "reason": "undo"})
    assert again.status_code == 422
    revoke = db_session.scalar(select(AuditEvent).where(
        AuditEvent.action == "keys.credential.revoke"))
    assert revoke.actor_type == "user" and "leaked" in revoke.details


def test_bad_input_is_4xx_and_writes_nothing(as_admin, store, db_session):
    assert _add(as_admin, value="not-a-secret").status_code == 422
    assert _add(as_admin, hours="0").status_code == 422
    assert _add(as_admin, hours="x").status_code == 422
    assert _add(as_admin, hours="\u00b2").status_code == 422
    assert _add(as_admin, hours="9" * 5000).status_code == 422
    assert as_admin.post("/keys/credentials/999/revoke",
                         data={"csrf_token": as_admin.csrf_token, "reason": "x"}
                         ).status_code == 404
    assert as_admin.post("/keys/credentials/1/explode",
                         data={"csrf_token": as_admin.csrf_token, "reason": "x"}
                         ).status_code == 404
    assert db_session.scalars(select(Credential)).all() == []


def test_without_csrf_or_without_the_permission_nothing_happens(as_admin, as_operator, store,
                                                                db_session):
    assert as_admin.post("/keys/webhook-secrets",
                         data={"value": NEW.export(), "reason": "x"}).status_code in (400, 403)
    assert _add(as_operator).status_code == 403
    assert db_session.scalars(select(Credential)).all() == []


def test_a_stale_sign_in_is_sent_to_step_up(app, sign_in, store, db_session):
    stale = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30)
    client = sign_in(app.test_client(), "admin", auth_time=stale)
    refused = _add(client)
    # A form POST is redirected to re-authenticate (it cannot be replayed after the round trip).
    assert refused.status_code == 303 and "/step-up" in refused.headers["Location"]
    assert db_session.scalars(select(Credential)).all() == []
    done = _add(sign_in(app.test_client(), "admin"))
    assert done.status_code == 303 and done.headers["Location"].endswith("/keys/#inventory")
    assert len(db_session.scalars(select(Credential)).all()) == 2
