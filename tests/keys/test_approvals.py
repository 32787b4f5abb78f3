"""Four-eyes key and credential actions (console.keys.approvals): a request by one admin,
carried out once when a different admin holding MANAGE_KEYS approves it; expiry; audit; the
setting off acts at once; the page and the CLI."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from sqlalchemy import select

from console.audit import Actor
from console.audit.models import AuditEvent
from console.finci.webhook_signature import WebhookSecret
from console.four_eyes import Decision, RequestStatus
from console.keys import approvals, inventory
from console.keys.approvals import KeyAction, KeyActionRefused, KeyContext
from console.keys.inventory import Kind
from console.secrets.memory import MemorySecretStore
from console.security.permissions import Role
from console.settings import Settings
from tests.keys.conftest import ingress
from tests.support.console_users import add_console_user

NOW = dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.UTC)
ANNA, BOB = Actor.cli("anna"), Actor.cli("bob")


@pytest.fixture
def ctx(settings):
    secrets = dataclasses.replace(settings.secrets, require_second_approver=True,
                                  approval_minutes=30)
    return KeyContext(settings.replace(secrets=secrets, ingress=ingress()), MemorySecretStore())


@pytest.fixture(autouse=True)
def _admins(db_session):
    add_console_user(db_session, "bob", Role.ADMIN)
    add_console_user(db_session, "vera", Role.ONCALL)


def _credential(db_session):
    return inventory.create(db_session, ANNA, kind=Kind.FINCI_API_TOKEN, name="token",
                            environment="sandbox", fingerprint="aaaabbbbccccdddd", at=NOW,
                            reason="seed", activate=True)


def _events(db_session, action):
    return list(db_session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def test_a_revoke_is_a_request_until_another_admin_approves_it(db_session, ctx):
    credential = _credential(db_session)
    done = approvals.perform(db_session, ANNA, ctx, KeyAction.CREDENTIAL_REVOKE,
                             reason="CHG-9 leaked", at=NOW, credential_id=credential.id)
    assert done.result is None and done.request.status == RequestStatus.PENDING
    assert credential.status == "active"
    assert approvals.pending(db_session, "sandbox", NOW) == [done.request]
    (asked,) = _events(db_session, "keys.action.request")
    assert asked.actor_id == "anna" and "CHG-9" in asked.details
    decided = approvals.decide(db_session, BOB, ctx, done.request.id, Decision.APPROVE,
                               now=NOW + dt.timedelta(minutes=5))
    assert decided.result.status == "revoked" and done.request.decided_by == "bob"
    (revoked,) = _events(db_session, "keys.credential.revoke")
    assert revoked.actor_id == "bob"
    assert _events(db_session, "keys.action.approve")


@pytest.mark.parametrize("who", ["anna", "ANNA "])
def test_the_requester_cannot_approve_their_own_request(db_session, ctx, who):
    credential = _credential(db_session)
    request = approvals.perform(db_session, ANNA, ctx, KeyAction.CREDENTIAL_RETIRE,
                                reason="r", at=NOW, credential_id=credential.id).request
    with pytest.raises(KeyActionRefused, match="second person"):
        approvals.decide(db_session, Actor.cli(who), ctx, request.id, Decision.APPROVE, now=NOW)
    assert credential.status == "active"


@pytest.mark.parametrize("who, refusal", [("vera", "does not hold the manage_keys"),
                                          ("root", "not a console user")])
def test_only_a_console_user_holding_manage_keys_approves(db_session, ctx, who, refusal):
    credential = _credential(db_session)
    request = approvals.perform(db_session, ANNA, ctx, KeyAction.CREDENTIAL_REVOKE,
                                reason="r", at=NOW, credential_id=credential.id).request
    with pytest.raises(KeyActionRefused, match=refusal):
        approvals.decide(db_session, Actor.cli(who), ctx, request.id, Decision.APPROVE, now=NOW)
    assert credential.status == "active" and request.status == RequestStatus.PENDING


def test_an_expired_request_cannot_be_approved_and_the_job_expires_it(db_session, ctx):
    credential = _credential(db_session)
    request = approvals.perform(db_session, ANNA, ctx, KeyAction.CREDENTIAL_REVOKE,
                                reason="r", at=NOW, credential_id=credential.id).request
    later = NOW + dt.timedelta(minutes=31)
    with pytest.raises(KeyActionRefused, match="expired"):
        approvals.decide(db_session, BOB, ctx, request.id, Decision.APPROVE, now=later)
    assert approvals.expire_due(db_session, later) == [request.id]
    assert request.status == RequestStatus.EXPIRED and credential.status == "active"
    assert _events(db_session, "keys.action.expire")


def test_a_double_approval_carries_the_action_out_once(db_session, ctx):
    credential = _credential(db_session)
    request = approvals.perform(db_session, ANNA, ctx, KeyAction.CREDENTIAL_REVOKE,
                                reason="r", at=NOW, credential_id=credential.id).request
    approvals.decide(db_session, BOB, ctx, request.id, Decision.APPROVE, now=NOW)
    with pytest.raises(KeyActionRefused, match="already approved"):
        approvals.decide(db_session, BOB, ctx, request.id, Decision.APPROVE, now=NOW)
    assert len(_events(db_session, "keys.credential.revoke")) == 1
    assert len(_events(db_session, "keys.action.approve")) == 1


def test_a_new_webhook_secret_is_staged_never_in_the_request_and_dropped_on_reject(db_session,
                                                                                  ctx):
    secret = WebhookSecret.generate()
    request = approvals.perform(db_session, ANNA, ctx, KeyAction.WEBHOOK_SECRET_ADD,
                                reason="CHG-1", at=NOW, value=secret.export(),
                                overlap_hours=24).request
    assert secret.export() not in request.params
    name = f"webhook/sandbox/{secret.fingerprint}"
    assert ctx.store.get(name) == secret.export().encode()
    assert inventory.find(db_session, Kind.WEBHOOK_SECRET, secret.fingerprint, "sandbox") is None
    approvals.decide(db_session, BOB, ctx, request.id, Decision.REJECT, now=NOW)
    with pytest.raises(Exception):  # noqa: B017 - the store's own "not found"
        ctx.store.get(name)


def test_an_approved_webhook_secret_becomes_active(db_session, ctx):
    secret = WebhookSecret.generate()
    request = approvals.perform(db_session, ANNA, ctx, KeyAction.WEBHOOK_SECRET_ADD,
                                reason="CHG-1", at=NOW, value=secret.export(),
                                overlap_hours=24).request
    decided = approvals.decide(db_session, BOB, ctx, request.id, Decision.APPROVE, now=NOW)
    assert decided.result.fingerprint == secret.fingerprint and decided.result.status == "active"


def test_with_the_setting_off_the_action_happens_at_once(db_session, ctx):
    off = dataclasses.replace(ctx, settings=ctx.settings.replace(secrets=dataclasses.replace(
        ctx.settings.secrets, require_second_approver=False)))
    credential = _credential(db_session)
    done = approvals.perform(db_session, ANNA, off, KeyAction.CREDENTIAL_REVOKE, reason="r",
                             at=NOW, credential_id=credential.id)
    assert done.request is None and done.result.status == "revoked"
    assert not _events(db_session, "keys.action.request")


def test_a_request_for_an_unknown_or_impossible_change_is_refused_at_once(db_session, ctx):
    with pytest.raises(inventory.CredentialNotFound):
        approvals.perform(db_session, ANNA, ctx, KeyAction.CREDENTIAL_REVOKE, reason="r",
                          at=NOW, credential_id=424242)
    credential = _credential(db_session)
    with pytest.raises(inventory.TransitionRefused):
        approvals.perform(db_session, ANNA, ctx, KeyAction.CREDENTIAL_ACTIVATE, reason="r",
                          at=NOW, credential_id=credential.id)
    with pytest.raises(KeyActionRefused, match="reason"):
        approvals.perform(db_session, ANNA, ctx, KeyAction.CREDENTIAL_REVOKE, reason=" ",
                          at=NOW, credential_id=credential.id)


def test_the_setting_defaults_on_in_production_off_in_a_sandbox_and_is_validated():
    from console.settings import ConfigError

    sandbox = {"CONSOLE_ENVIRONMENT": "sandbox", "SECRET_KEY": "k" * 64,
               "DATABASE_URL": "sqlite://", "CONSOLE_MODE": "test"}
    assert Settings.from_env(sandbox).secrets.require_second_approver is False
    assert Settings.from_env({**sandbox, "KEY_ACTIONS_REQUIRE_SECOND_APPROVER": "true"}) \
        .secrets.require_second_approver is True
    with pytest.raises(ConfigError, match="KEY_ACTIONS_REQUIRE_SECOND_APPROVER"):
        Settings.from_env({**sandbox, "KEY_ACTIONS_REQUIRE_SECOND_APPROVER": "maybe"})
    from console.secrets.settings import SecretsSettings

    assert SecretsSettings.from_env({}, production=True).require_second_approver is True


def test_the_expiry_job_deletes_what_an_expired_request_staged(app, db_session, ctx):
    from console.scheduler.registry import _expire_key_requests
    from tests.keys.conftest import use_store

    secret = WebhookSecret.generate()
    request = approvals.perform(db_session, ANNA, ctx, KeyAction.WEBHOOK_SECRET_ADD,
                                reason="CHG-1", at=NOW, value=secret.export(),
                                overlap_hours=24).request
    name = f"webhook/sandbox/{secret.fingerprint}"
    use_store(app, ctx.store)  # the store the running console reads
    with app.app_context():
        summary = _expire_key_requests(db_session, Actor.system("scheduler"),
                                       NOW + dt.timedelta(minutes=31))
    assert summary == f"expired #{request.id}" and request.status == RequestStatus.EXPIRED
    with pytest.raises(Exception):  # noqa: B017 - the store's own "not found"
        ctx.store.get(name)
    assert inventory.find(db_session, Kind.WEBHOOK_SECRET, secret.fingerprint, "sandbox") is None
