"""The card-data keys page: admins (MANAGE_KEYS) only, step-up for every action, PEM download."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select

from console.audit.models import AuditEvent
from console.keys import card_data_keys as keys
from tests.keys.card_data.conftest import new_key


def _post(client, path, **data):
    return client.post(path, data={"csrf_token": client.csrf_token, **data})


@pytest.mark.parametrize("persona", ["viewer", "operator", "oncall", "compliance"])
def test_only_admins_see_or_act(app, sign_in, persona, store):
    client = sign_in(app.test_client(), persona)
    assert client.get("/keys/card-data/").status_code == 403
    assert _post(client, "/keys/card-data/generate").status_code == 403
    assert store.names() == []


def test_admin_generates_downloads_activates_and_retires(as_admin, db_session, store):
    response = _post(as_admin, "/keys/card-data/generate")
    assert response.status_code == 303
    (key,) = keys.list_keys(db_session, "sandbox")
    page = as_admin.get(response.headers["Location"]).get_data(as_text=True)
    assert key.kid in page and key.fingerprint in page and "BEGIN PUBLIC KEY" in page
    assert "PRIVATE" not in page
    pem = as_admin.get(f"/keys/card-data/{key.kid}/public.pem")
    assert pem.status_code == 200 and pem.headers["X-Key-Id"] == key.kid
    assert f'filename="{key.kid}.pem"' in pem.headers["Content-Disposition"]
    serialization.load_pem_public_key(pem.data)  # SPKI PEM
    assert _post(as_admin, f"/keys/card-data/{key.kid}/activate").status_code == 303
    assert _post(as_admin, f"/keys/card-data/{key.kid}/retire", reason="x").status_code == 409
    assert _post(as_admin, f"/keys/card-data/{key.kid}/retire",
                 reason="rotation finished").status_code == 303
    db_session.expire_all()
    assert keys.list_keys(db_session, "sandbox")[0].status == "retired"
    actions = db_session.scalars(select(AuditEvent.action).where(
        AuditEvent.action.like("keys.card_data.%")).order_by(AuditEvent.seq)).all()
    assert actions == ["keys.card_data.generate", "keys.card_data.activate",
                       "keys.card_data.retire"]


def test_revoke_from_the_page_destroys_the_private_key(as_admin, db_session, store):
    key = new_key(db_session, store)
    db_session.commit()
    assert _post(as_admin, f"/keys/card-data/{key.kid}/revoke",
                 reason="key leaked in a ticket").status_code == 303
    assert store.names() == []


def test_every_key_action_needs_a_fresh_sign_in(app, sign_in, db_session, store):
    key = new_key(db_session, store)
    db_session.commit()
    stale = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30)
    client = sign_in(app.test_client(), "admin", auth_time=stale)
    assert client.get("/keys/card-data/").status_code == 200  # looking needs no step-up
    for path in ("generate", f"{key.kid}/activate", f"{key.kid}/retire", f"{key.kid}/revoke"):
        response = client.post(f"/keys/card-data/{path}",
                               data={"csrf_token": client.csrf_token, "reason": "a reason"},
                               headers={"HX-Request": "true"})
        assert response.status_code == 401, path
    assert store.names() == [key.secret_name] and key.status == "active"


def test_unknown_keys_are_404_and_no_store_is_503(as_admin, app):
    assert as_admin.get("/keys/card-data/cd-sandbox-nope/public.pem").status_code == 404
    assert _post(as_admin, "/keys/card-data/cd-sandbox-nope/retire",
                 reason="no such key").status_code == 404
    app.extensions.pop("secrets.store")
    response = _post(as_admin, "/keys/card-data/generate")
    assert response.status_code == 503 and "no secret store" in response.get_data(as_text=True)


def test_an_unknown_key_is_404_even_without_a_store(as_admin, app):
    app.extensions.pop("secrets.store")
    assert _post(as_admin, "/keys/card-data/cd-sandbox-nope/revoke",
                 reason="no such key").status_code == 404
