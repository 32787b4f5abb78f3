"""Break-glass accounts: password + TOTP, lockout after 10 failures for 30 minutes, every use
audited and flagged on every page."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from console.audit import Actor
from console.audit.models import AuditEvent
from console.auth import break_glass
from console.auth.models import BreakGlassAccount
from console.auth.services import permissions_of
from console.auth.settings import AuthSettings
from console.db import utcnow
from console.security.permissions import Permission, Role
from tests.auth.conftest import anonymous_csrf

PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def _cheap_hashing(monkeypatch):
    # Production uses argon2's default cost (~0.4 s here); these tests hash dozens of times.
    monkeypatch.setattr(break_glass, "_hasher",
                        PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    monkeypatch.setattr(break_glass, "_dummy_hash", lambda: break_glass._hasher.hash("x" * 16))


@pytest.fixture
def settings(settings):
    return settings.replace(auth=AuthSettings(break_glass_enabled=True))


@pytest.fixture
def totp(app, settings, db_session, clock) -> pyotp.TOTP:
    with app.app_context():
        created = break_glass.create_account(
            db_session, "alice", PASSWORD, [Role.ONCALL, Role.ADMIN],
            actor=Actor.cli("root"), secret_key=settings.secret_key, at=clock.now)
    db_session.commit()
    secret = parse_qs(urlsplit(created.provisioning_uri).query)["secret"][0]
    return pyotp.TOTP(secret)


def _attempt(client, clock, totp, *, password=PASSWORD, code=None, username="alice"):
    return client.post("/auth/break-glass", data={
        "csrf_token": anonymous_csrf(client), "username": username, "password": password,
        "code": code or totp.at(clock.now), "next": "/"})


def _events(db_session, action) -> list[dict]:
    rows = db_session.scalars(select(AuditEvent).where(AuditEvent.action == action)
                              .order_by(AuditEvent.seq))
    return [{"actor_type": r.actor_type, "actor": r.actor_id, "outcome": r.outcome,
             **json.loads(r.details)} for r in rows]


def test_password_and_totp_open_a_flagged_session(client, clock, totp, db_session):
    response = _attempt(client, clock, totp)
    assert response.status_code == 303
    page = client.get("/").get_data(as_text=True)
    assert 'data-testid="break-glass-banner"' in page
    assert 'data-testid="break-glass-flag"' in page
    users = client.get("/users/").get_data(as_text=True)
    assert 'data-testid="break-glass-banner"' in users
    [login] = _events(db_session, "auth.break_glass.login")
    assert (login["actor_type"], login["actor"], login["outcome"]) == \
        ("break_glass", "break-glass:alice", "success")
    # What the session does is attributed to break-glass too.
    views = [e for e in _events(db_session, "auth.access.deny")]
    assert views == []


@pytest.mark.parametrize(("field", "reason"), [
    ({"password": "wrong password, long enough"}, "bad_password"),
    ({"code": "000000"}, "bad_totp"),
    ({"username": "mallory"}, "unknown_account"),
])
def test_a_wrong_credential_is_refused_alike_and_audited(
        client, clock, totp, db_session, field, reason):
    response = _attempt(client, clock, totp, **field)
    assert response.status_code == 401
    assert "Sign-in failed." in response.get_data(as_text=True)
    [failure] = _events(db_session, "auth.break_glass.login")
    assert (failure["outcome"], failure["reason"]) == ("failure", reason)
    assert client.get("/").status_code == 302


def test_ten_failures_lock_the_account_for_thirty_minutes(client, clock, totp, db_session):
    for _ in range(10):
        assert _attempt(client, clock, totp, password="not the password!!").status_code == 401
    [lock] = _events(db_session, "auth.break_glass.lock")
    assert lock["outcome"] == "denied" and lock["failures"] == 10
    # Even the right password and code are refused while locked.
    assert _attempt(client, clock, totp).status_code == 401
    assert _events(db_session, "auth.break_glass.login")[-1]["reason"] == "locked"
    clock.advance(minutes=29)
    assert _attempt(client, clock, totp).status_code == 401
    clock.advance(minutes=1, seconds=1)
    assert _attempt(client, clock, totp).status_code == 303


def test_failures_are_counted_even_though_the_answer_is_an_error(
        client, clock, totp, db_session):
    _attempt(client, clock, totp, password="not the password!!")
    _attempt(client, clock, totp, password="not the password!!")
    db_session.expire_all()
    assert db_session.scalar(select(BreakGlassAccount.failed_attempts)) == 2
    _attempt(client, clock, totp)
    db_session.expire_all()
    assert db_session.scalar(select(BreakGlassAccount.failed_attempts)) == 0


def test_a_totp_code_works_once(app, clock, totp):
    first, second = app.test_client(), app.test_client()
    code = totp.at(clock.now)
    assert _attempt(first, clock, totp, code=code).status_code == 303
    assert _attempt(second, clock, totp, code=code).status_code == 401


def test_break_glass_never_grants_card_data_reveal(client, clock, totp, db_session):
    _attempt(client, clock, totp)
    account = db_session.scalar(select(BreakGlassAccount))
    assert Permission.REVEAL_CARD_DATA not in permissions_of(account.user, break_glass=True)
    assert Permission.MANAGE_USERS in permissions_of(account.user, break_glass=True)


def test_step_up_in_a_break_glass_session_asks_for_password_and_code_again(
        client, clock, totp):
    _attempt(client, clock, totp)
    response = client.get("/auth/step-up?next=/flows/")
    assert response.headers["Location"] == "/auth/break-glass?next=/flows/&step_up=1"
    clock.advance(minutes=1)
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Confirm your identity again" in page


def test_signing_out_of_break_glass_stays_local(client, clock, totp, db_session):
    _attempt(client, clock, totp)
    page = client.get("/")
    token = page.get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
    response = client.post("/auth/logout", data={"csrf_token": token})
    assert response.headers["Location"] == "/auth/signed-out"
    [logout] = _events(db_session, "auth.session.logout")
    assert logout["actor_type"] == "break_glass"


def test_the_totp_secret_is_sealed_under_the_secret_key(settings, totp, db_session):
    sealed = db_session.scalar(select(BreakGlassAccount.totp_secret_encrypted))
    assert totp.secret not in sealed
    assert break_glass.open_totp_secret(sealed, settings.secret_key) == totp.secret
    with pytest.raises(break_glass.BreakGlassError):
        break_glass.open_totp_secret(sealed, "another-secret-key-" + "y" * 30)


@pytest.mark.parametrize(("name", "password", "roles", "message"), [
    ("Alice!", PASSWORD, [Role.ADMIN], "lowercase"),
    ("bob", "short", [Role.ADMIN], "at least 16"),
    ("bob", PASSWORD, [], "at least one role"),
])
def test_accounts_must_be_well_formed(db_session, settings, name, password, roles, message):
    with pytest.raises(break_glass.BreakGlassError, match=message):
        break_glass.create_account(db_session, name, password, roles, actor=Actor.cli("root"),
                                   secret_key=settings.secret_key, at=utcnow())


def test_one_address_guessing_many_names_is_throttled(app, clock, totp, db_session):
    client = app.test_client()
    for n in range(20):
        _attempt(client, clock, totp, username=f"guess{n}")
    # Now even the right credentials from that address are refused, without a password check.
    assert _attempt(client, clock, totp).status_code == 401
    assert _events(db_session, "auth.break_glass.login")[-1]["reason"] == "source_throttled"
    other = app.test_client()
    assert _attempt(other, clock, totp, username="alice").status_code == 401  # same address
    clock.advance(minutes=31)
    assert _attempt(client, clock, totp).status_code == 303


def test_every_attempt_is_recorded_with_its_source(client, clock, totp, db_session):
    from console.auth.models import LoginAttempt

    _attempt(client, clock, totp, password="not the password!!")
    _attempt(client, clock, totp)
    rows = db_session.scalars(select(LoginAttempt).order_by(LoginAttempt.id)).all()
    assert [(r.username, r.succeeded, r.reason) for r in rows] == [
        ("alice", False, "bad_password"), ("alice", True, None)]
    assert rows[0].source_ip == "127.0.0.1"


def test_a_nul_in_the_username_is_a_400_not_an_outage(client, clock, totp, db_session, caplog):
    # PostgreSQL refuses NUL in text: reaching the query was a 503 "database unavailable" and an
    # ERROR line that pages on-call, for an anonymous visitor's typo (or probe).
    with caplog.at_level("WARNING"):
        response = _attempt(client, clock, totp, username="a\x00")
    assert response.status_code == 400
    assert "NUL" in response.get_data(as_text=True)
    assert [r for r in caplog.records if r.levelname in {"ERROR", "CRITICAL"}] == []


def test_unknown_and_locked_names_cost_one_hash_and_answer_alike(
        client, clock, totp, db_session, monkeypatch):
    verified = []
    real_verify = break_glass._verify_password
    monkeypatch.setattr(break_glass, "_verify_password",
                        lambda hashed, password: verified.append(1) or real_verify(hashed,
                                                                                    password))
    answers = []

    def answer(**field):
        verified.clear()
        response = _attempt(client, clock, totp, password="not the password!!", **field)
        answers.append((response.status_code, response.get_data(as_text=True).count(
            "Sign-in failed.")))
        return len(verified)

    assert answer(username="mallory") == 1
    assert answer() == 1  # a known account, wrong password
    for _ in range(9):
        answer()
    assert _events(db_session, "auth.break_glass.login")[-1]["reason"] == "bad_password"
    assert answer() == 1  # locked: the hash is still verified
    assert _events(db_session, "auth.break_glass.login")[-1]["reason"] == "locked"
    assert set(answers) == {(401, 1)}


def test_an_unknown_name_is_locked_out_after_ten_failures_like_an_account(
        client, clock, totp, db_session):
    for _ in range(10):
        assert _attempt(client, clock, totp, username="mallory",
                        password="not the password!!").status_code == 401
    locks = _events(db_session, "auth.break_glass.lock")
    assert [(lock["actor_type"], lock["failures"]) for lock in locks] == [("anonymous", 10)]
    assert _attempt(client, clock, totp, username="mallory").status_code == 401
    assert _events(db_session, "auth.break_glass.login")[-1]["reason"] == "locked"
    clock.advance(minutes=30, seconds=1)
    _attempt(client, clock, totp, username="mallory")
    assert _events(db_session, "auth.break_glass.login")[-1]["reason"] == "unknown_account"
