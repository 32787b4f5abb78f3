"""The Credentials and keys page: admins only, audited, never a secret value."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from sqlalchemy import select

from console.audit.models import AuditEvent
from console.audit.settings import AuditSettings
from tests.keys.conftest import (
    API_SECRET,
    NEW_SECRET,
    OLD_SECRET,
    add_job,
    add_message,
    audit_key,
    card_api,
    fingerprint,
    ingress,
    make_certificate,
    oidc,
    secret_strings,
)


@pytest.fixture
def settings(settings):
    return settings.replace(ingress=ingress(OLD_SECRET, NEW_SECRET), lifecycle=card_api(),
                            audit=AuditSettings(export_signing_key=audit_key()), auth=oidc())


def _views(db_session):
    return db_session.scalars(select(AuditEvent).where(
        AuditEvent.action == "keys.status.view")).all()


def test_admin_sees_what_is_configured_and_what_needs_action(as_admin, db_session, now):
    add_message(db_session, fingerprint(NEW_SECRET), now - dt.timedelta(hours=1))
    add_job(db_session, "cards.refresh", "failure", "CardApiError: FINCI answered 401")
    page = as_admin.get("/keys/")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert "Credentials and keys" in body
    assert fingerprint(OLD_SECRET) in body and fingerprint(NEW_SECRET) in body
    assert "the rotation has finished" in body
    assert "cards.refresh failed on its last run" in body
    assert 'data-testid="key-summary" data-status="problem"' in body
    assert "finci-console" in body and "https://idp.example/realms/console" in body
    assert "terminated in front of the console" in body
    assert page.headers["Cache-Control"].startswith("no-store") or \
        "no-store" in page.headers["Cache-Control"]


def test_viewing_the_page_is_audited(as_admin, db_session):
    as_admin.get("/keys/")
    (view,) = _views(db_session)
    assert view.actor_type == "user" and view.outcome == "success"
    assert '"needs_action"' in view.details


@pytest.mark.parametrize("persona", ["viewer", "operator", "oncall", "compliance"])
def test_other_roles_are_refused_and_not_shown_the_link(app, sign_in, db_session, persona):
    client = sign_in(app.test_client(), persona)
    assert client.get("/keys/").status_code == 403
    assert _views(db_session) == []
    assert 'href="/keys/"' not in client.get("/").get_data(as_text=True)


def test_the_navigation_offers_the_page_to_admins(as_admin):
    assert 'href="/keys/"' in as_admin.get("/").get_data(as_text=True)


def test_anonymous_visitors_are_sent_to_sign_in(client):
    response = client.get("/keys/")
    assert response.status_code in {302, 401}


def test_check_again_returns_only_the_report_fragment(as_admin, db_session):
    response = as_admin.get("/keys/", headers={"HX-Request": "true", "HX-Target": "key-status"})
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in body
    assert 'data-testid="key-summary"' in body
    assert len(_views(db_session)) == 1


def test_no_secret_value_reaches_the_page_or_the_log(app, as_admin, settings, db_session, now,
                                                     tmp_path, monkeypatch, caplog):
    cert = tmp_path / "cert.pem"
    make_certificate(cert, not_before=now - dt.timedelta(days=1),
                     not_after=now + dt.timedelta(days=100))
    monkeypatch.setenv("TLS_CERT_FILE", str(cert))
    monkeypatch.setenv("TLS_KEY_FILE", str(cert))
    add_job(db_session, "cards.send_actions", "failure", f"boom with {API_SECRET}")
    caplog.set_level(logging.DEBUG)
    body = as_admin.get("/keys/").get_data(as_text=True)
    assert "CN=console.example" in body  # the page really rendered the TLS item
    details = " ".join(view.details for view in _views(db_session))
    logs = "\n".join(record.getMessage() + str(record.__dict__) for record in caplog.records)
    for secret in secret_strings(settings):
        assert secret not in body
        assert secret not in details
        assert secret not in logs
