"""`flask auth ...`: create a break-glass account (TOTP URI shown once), unlock, purge."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select, update

from console.audit.models import AuditEvent
from console.auth import break_glass
from console.auth.models import BreakGlassAccount, ConsoleSession, User
from console.cli import register_commands

PASSWORD = "a long break-glass password"


@pytest.fixture
def cli(app, monkeypatch):
    monkeypatch.setattr(break_glass, "_hasher",
                        PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    register_commands(app)
    runner = app.test_cli_runner()

    def run(*args, stdin: str | None = None):
        return runner.invoke(args=list(args), input=stdin)

    return run


def test_create_prints_the_totp_provisioning_uri_once_as_json(cli, db_session):
    result = cli("auth", "break-glass", "create", "alice", "--role", "oncall", "--role", "admin",
                 "--password-stdin", "--json", stdin=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["username"] == "break-glass:alice"
    assert payload["roles"] == ["admin", "oncall"]
    assert payload["totp_provisioning_uri"].startswith("otpauth://totp/")
    assert payload["break_glass_enabled"] is False
    user = db_session.scalar(select(User).where(User.username == "break-glass:alice"))
    assert user.kind == "break_glass"
    event = db_session.scalars(select(AuditEvent).where(
        AuditEvent.action == "auth.break_glass.create")).one()
    assert event.actor_type == "cli"
    # The URI is not stored anywhere: only the sealed secret is.
    sealed = db_session.scalar(select(BreakGlassAccount.totp_secret_encrypted))
    assert "otpauth" not in sealed


def test_create_refuses_a_weak_password_with_a_usage_error(cli):
    result = cli("auth", "break-glass", "create", "bob", "--role", "admin", "--password-stdin",
                 stdin="short\n")
    assert result.exit_code == 2
    assert "at least 16 characters" in result.output


def test_unlock_clears_a_lockout(cli, db_session):
    cli("auth", "break-glass", "create", "carol", "--role", "oncall", "--password-stdin",
        stdin=PASSWORD + "\n")
    db_session.execute(update(BreakGlassAccount).values(
        locked_until=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=30), failed_attempts=3))
    db_session.commit()
    result = cli("auth", "break-glass", "unlock", "carol", "--json")
    assert json.loads(result.output) == {"username": "break-glass:carol", "unlocked": True}
    db_session.expire_all()
    assert db_session.scalar(select(BreakGlassAccount.locked_until)) is None
    assert cli("auth", "break-glass", "unlock", "nobody").exit_code == 2


def test_purge_sessions_deletes_only_expired_ones(cli, sign_in, client, db_session):
    sign_in(client, "viewer")
    db_session.add(ConsoleSession(
        token_hash="0" * 64, user_id=None, break_glass=False,
        created_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
        last_seen_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
        expires_at=dt.datetime(2020, 1, 1, 12, tzinfo=dt.UTC), data="{}"))
    db_session.commit()
    result = cli("auth", "purge-sessions", "--json")
    assert json.loads(result.output) == {"purged": 1, "attempts_purged": 0}
    assert client.get("/").status_code == 200
