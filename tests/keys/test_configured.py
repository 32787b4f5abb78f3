"""Credentials configured outside the console are recorded in the inventory by fingerprint;
a changed value gets a new row and retires the old one."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from sqlalchemy import select

from console.audit.models import AuditEvent
from console.keys.inventory import fingerprint
from console.keys.models import Credential
from tests.keys.conftest import (
    API_SECRET,
    API_TOKEN,
    NEW_SECRET,
    OIDC_SECRET,
    card_api,
    ingress,
    make_certificate,
    oidc,
)


@pytest.fixture
def settings(settings):
    return settings.replace(ingress=ingress(NEW_SECRET), lifecycle=card_api(), auth=oidc())


@pytest.fixture
def certificate(tmp_path, monkeypatch):
    path = tmp_path / "cert.pem"
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    make_certificate(path, not_before=now - dt.timedelta(days=1),
                     not_after=now + dt.timedelta(days=40))
    monkeypatch.setenv("TLS_CERT_FILE", str(path))
    return now + dt.timedelta(days=40)


def _rows(db_session):
    db_session.expire_all()
    return {(c.kind, c.status): c for c in db_session.scalars(select(Credential))}


def test_every_configured_kind_is_recorded_once_by_fingerprint_only(cli, db_session,
                                                                    certificate):
    result, _ = cli("keys", "record-configured")
    assert result.exit_code == 0, result.output
    for value in (API_TOKEN, API_SECRET, OIDC_SECRET, NEW_SECRET):
        assert value not in result.output
    rows = _rows(db_session)
    assert set(rows) == {("finci_api_token", "active"), ("finci_api_secret", "active"),
                         ("sso_client_secret", "active"), ("tls_certificate", "active"),
                         ("webhook_secret", "active")}
    assert rows[("finci_api_token", "active")].fingerprint == fingerprint(API_TOKEN.encode())
    assert rows[("tls_certificate", "active")].expires_at == certificate
    again, _ = cli("keys", "record-configured")
    assert again.output.strip() == "nothing new to record"
    _, listed = cli("keys", "list", "--json")
    assert len(listed["credentials"]) == 5
    view = db_session.scalars(select(AuditEvent).where(
        AuditEvent.action == "keys.status.view")).all()[-1]
    assert view.actor_type == "cli" and '"view":"inventory"' in view.details.replace(" ", "")
    assert all(v not in str(listed) for v in (API_TOKEN, API_SECRET, OIDC_SECRET, NEW_SECRET))


def test_a_changed_value_gets_a_new_row_and_retires_the_old(app, cli, db_session, settings):
    assert cli("keys", "record-configured")[0].exit_code == 0
    app.extensions["settings"] = settings.replace(
        auth=dataclasses.replace(oidc(), client_secret="rotated-oidc-secret-" + "R" * 20))
    result, _ = cli("keys", "record-configured")
    assert "sso_client_secret" in result.output
    rows = _rows(db_session)
    assert rows[("sso_client_secret", "retired")].fingerprint == fingerprint(
        OIDC_SECRET.encode())
    assert ("sso_client_secret", "active") in rows


def test_the_page_records_them_too(as_admin, db_session):
    response = as_admin.post("/keys/inventory/record-configured",
                             data={"csrf_token": as_admin.csrf_token})
    assert response.status_code == 303
    page = as_admin.get("/keys/").get_data(as_text=True)
    assert fingerprint(API_TOKEN.encode()) in page and "FINCI API token" in page
    assert API_TOKEN not in page and OIDC_SECRET not in page
