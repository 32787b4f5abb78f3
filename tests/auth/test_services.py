"""The sign-in service: users, roles from the identity provider, refusals, audit."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select

from console.audit import Actor
from console.audit.actions import ActorType
from console.audit.models import AuditEvent
from console.auth import services
from console.auth.models import ConsoleSession, User
from console.auth.sessions import SessionLimits
from console.security.permissions import Permission, Role

NOW = dt.datetime(2026, 11, 27, 9, 0, tzinfo=dt.UTC)
LIMITS = SessionLimits(idle=dt.timedelta(minutes=15), absolute=dt.timedelta(hours=12))
ORIGIN = Actor(ActorType.ANONYMOUS, "anonymous", source_ip="192.0.2.7")


def identity(subject="s-1", username="ada", roles=(Role.VIEWER,), **extra):
    return services.Identity(issuer="https://idp.example", subject=subject, username=username,
                             display_name="Ada", email="ada@example.com",
                             roles=frozenset(roles), auth_time=NOW, **extra)


def login(db_session, who, **kwargs):
    return services.login(db_session, who, origin=ORIGIN, at=NOW, limits=LIMITS, **kwargs)


def actions(db_session) -> list[str]:
    return list(db_session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)))


def test_a_first_sign_in_creates_the_user_and_audits_both(db_session):
    user, started = login(db_session, identity())
    assert user.role_names == ["viewer"]
    assert started.record.user_id == user.id and started.record.auth_time == NOW
    assert started.record.expires_at == NOW + dt.timedelta(hours=12)
    assert actions(db_session) == ["auth.user.create", "auth.session.login"]
    event = db_session.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc())).first()
    assert (event.actor_id, event.source_ip) == ("ada", "192.0.2.7")


def test_a_role_change_at_the_provider_is_applied_and_audited(db_session):
    login(db_session, identity(roles=(Role.VIEWER,)))
    user, _ = login(db_session, identity(roles=(Role.OPERATOR, Role.ONCALL)))
    assert user.role_names == ["oncall", "operator"]
    change = db_session.scalars(select(AuditEvent).where(
        AuditEvent.action == "auth.roles.change")).one()
    assert json.loads(change.details)["changes"] == {
        "roles": {"before": ["viewer"], "after": ["oncall", "operator"]}}


def test_losing_every_console_group_ends_sessions_and_refuses(db_session):
    login(db_session, identity())
    with pytest.raises(services.LoginRefused) as refused:
        login(db_session, identity(roles=()))
    assert refused.value.reason == "no_role"
    assert db_session.scalars(select(ConsoleSession)).all() == []


def test_a_disabled_user_cannot_sign_in(db_session):
    user, _ = login(db_session, identity())
    services.disable_user(db_session, user.id, actor=Actor.cli("root"), acting_user_id=None,
                          at=NOW)
    with pytest.raises(services.LoginRefused, match="disabled"):
        login(db_session, identity())
    assert actions(db_session)[-1] == "auth.session.login"
    denied = db_session.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc())).first()
    assert denied.outcome == "denied"


def test_signing_in_again_replaces_the_previous_session(db_session):
    _, first = login(db_session, identity())
    _, second = login(db_session, identity(), replaces=first.record.id)
    assert [s.id for s in db_session.scalars(select(ConsoleSession))] == [second.record.id]


def test_two_people_with_the_same_name_get_distinct_usernames(db_session):
    first, _ = login(db_session, identity(subject="s-1"))
    second, _ = login(db_session, identity(subject="s-2"))
    assert first.username == "ada"
    assert second.username.startswith("ada~") and second.username != first.username


def test_card_data_reveal_comes_only_from_the_reveal_group(db_session):
    plain, _ = login(db_session, identity(subject="s-1", roles=(Role.ADMIN,)))
    trusted, _ = login(db_session, identity(subject="s-2", username="bo",
                                            reveal_card_data=True))
    assert Permission.REVEAL_CARD_DATA not in services.permissions_of(plain)
    assert Permission.REVEAL_CARD_DATA in services.permissions_of(trusted)


def test_a_step_up_must_be_the_same_person(db_session):
    user, _ = login(db_session, identity(subject="s-1"))
    with pytest.raises(services.LoginRefused, match="different user"):
        login(db_session, identity(subject="s-2", username="eve"), step_up_of=user.id)
    assert db_session.scalar(select(User).where(User.subject == "s-2")) is None
