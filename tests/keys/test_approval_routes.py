"""Four-eyes key actions on /keys/ and from ``flask --app wsgi keys``: the page lists waiting
requests (who, why, expiry, approve/reject for another admin), a double submit acts once."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import select

from console.audit.models import AuditEvent
from console.keys import approvals, inventory
from console.keys.inventory import Kind
from console.keys.models import Credential
from console.secrets.local import LocalKeystore
from console.security.permissions import Role
from tests.keys.conftest import ingress, oidc, use_store
from tests.support.console_users import add_console_user


@pytest.fixture
def settings(settings):
    return settings.replace(ingress=ingress(), auth=oidc(), secrets=dataclasses.replace(
        settings.secrets, require_second_approver=True))


@pytest.fixture
def store(app, tmp_path):
    return use_store(app, LocalKeystore(tmp_path / "keystore", b"k" * 32))


@pytest.fixture
def credential(db_session):
    from console.audit import Actor
    from console.db import utcnow

    found = inventory.create(db_session, Actor.cli("seed"), kind=Kind.FINCI_API_TOKEN,
                             name="token", environment="sandbox",
                             fingerprint="eeeeffffgggghhhh", at=utcnow(), reason="seed",
                             activate=True)
    db_session.commit()
    return found


def _count(db_session, action):
    return len(db_session.scalars(select(AuditEvent).where(AuditEvent.action == action)).all())


def test_a_request_waits_on_the_page_and_another_admin_approves_it_once(
        as_admin, sign_in, app, store, credential, db_session):
    empty = as_admin.get("/keys/").get_data(as_text=True)
    assert 'data-testid="key-requests-empty"' in empty
    filed = as_admin.post(f"/keys/credentials/{credential.id}/revoke",
                          data={"csrf_token": as_admin.csrf_token, "reason": "CHG-7 leaked"})
    assert filed.status_code == 303 and filed.headers["Location"].endswith("#requests")
    db_session.expire_all()
    assert db_session.get(Credential, credential.id).status == "active"
    mine = as_admin.get("/keys/").get_data(as_text=True)
    assert "CHG-7 leaked" in mine and 'data-testid="request-expires"' in mine
    assert 'data-testid="request-cancel"' in mine and 'data-testid="request-approve"' not in mine
    (request_id,) = [r.id for r in approvals.pending(db_session, "sandbox")]
    own = as_admin.post(f"/keys/requests/{request_id}/approve",
                        data={"csrf_token": as_admin.csrf_token})
    assert own.status_code == 422
    bob = sign_in(app.test_client(), "admin2")
    theirs = bob.get("/keys/").get_data(as_text=True)
    assert 'data-testid="request-approve"' in theirs and 'data-testid="request-reject"' in theirs
    first = bob.post(f"/keys/requests/{request_id}/approve", data={"csrf_token": bob.csrf_token})
    second = bob.post(f"/keys/requests/{request_id}/approve",
                      data={"csrf_token": bob.csrf_token})
    assert first.status_code == 303 and second.status_code == 422
    db_session.expire_all()
    assert db_session.get(Credential, credential.id).status == "revoked"
    assert _count(db_session, "keys.credential.revoke") == 1
    assert _count(db_session, "keys.action.approve") == 1


def test_the_cli_files_and_a_second_console_admin_approves(cli, monkeypatch, store, credential,
                                                         db_session):
    add_console_user(db_session, "bob", Role.ADMIN)
    db_session.commit()
    monkeypatch.setattr("console.cli.os_user", lambda: "anna")
    result, _ = cli("keys", "revoke", str(credential.id), "--reason", "INC-3 leaked")
    assert result.exit_code == 0 and "request #" in result.output, result.output
    result, listing = cli("keys", "requests", "--json")
    (request,) = listing["requests"]
    assert request["requested_by"] == "anna" and request["reason"] == "INC-3 leaked"
    result, refused = cli("keys", "approve", str(request["request"]), "--json")
    assert result.exit_code == 1 and "second person" in refused["error"]
    monkeypatch.setattr("console.cli.os_user", lambda: "root")
    result, refused = cli("keys", "approve", str(request["request"]), "--json")
    assert result.exit_code == 1 and "not a console user" in refused["error"]
    monkeypatch.setattr("console.cli.os_user", lambda: "bob")
    result, approved = cli("keys", "approve", str(request["request"]), "--json")
    assert result.exit_code == 0 and approved["status"] == "approved", result.output
    db_session.expire_all()
    assert db_session.get(Credential, credential.id).status == "revoked"


def test_every_inventory_action_answers_json_for_scripts(cli, monkeypatch, store, credential,
                                                         app):
    settings = app.extensions["settings"]
    app.extensions["settings"] = settings.replace(secrets=dataclasses.replace(
        settings.secrets, require_second_approver=False))
    result, done = cli("keys", "retire", str(credential.id), "--reason", "CHG-8 rotation",
                       "--after-hours", "2", "--json")
    assert result.exit_code == 0, result.output
    assert done["id"] == credential.id and done["status"] == "retiring"
    result, done = cli("keys", "revoke", str(credential.id), "--reason", "INC-9", "--json")
    assert result.exit_code == 0 and done["status"] == "revoked", result.output
    result, refused = cli("keys", "activate", str(credential.id), "--reason", "x", "--json")
    assert result.exit_code == 1 and "revoked" in refused["error"]
    result, recorded = cli("keys", "record-configured", "--json")
    assert result.exit_code == 0 and isinstance(recorded["recorded"], list)


def test_a_filed_request_answers_json(cli, monkeypatch, store, credential):
    monkeypatch.setattr("console.cli.os_user", lambda: "anna")
    result, filed = cli("keys", "revoke", str(credential.id), "--reason", "INC-3", "--json")
    assert result.exit_code == 0, result.output
    assert filed["request"]["action"] == "credential.revoke"
    assert filed["request"]["requested_by"] == "anna"
