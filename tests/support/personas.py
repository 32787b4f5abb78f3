"""Signed-in test clients. A persona's session is started by ``console.auth.services.login``,
the same function the OIDC callback calls after validating an ID token: tests skip only the
browser round trip to the identity provider, not any product code."""

from __future__ import annotations

import datetime as dt

from console.audit import Actor
from console.audit.actions import ActorType
from console.auth import services
from console.auth.sessions import COOKIE_NAME
from console.db import utcnow
from console.security import csrf
from console.security.permissions import Role

TEST_ISSUER = "https://idp.test.invalid"
# The local IdP's personas (idp/personas.json) and the roles their groups map to.
PERSONA_ROLES: dict[str, tuple[Role, ...]] = {
    "viewer": (Role.VIEWER,),
    "operator": (Role.OPERATOR,),
    "oncall": (Role.ONCALL,),
    # A second on-call engineer, for four-eyes approvals (not an IdP persona).
    "oncall2": (Role.ONCALL,),
    # A second admin, for four-eyes key and credential actions.
    "admin2": (Role.ADMIN,),
    "compliance": (Role.COMPLIANCE,),
    "admin": (Role.ADMIN,),
    "multi": (Role.VIEWER, Role.COMPLIANCE),
    "outsider": (),
}


def persona_identity(persona: str, *, auth_time: dt.datetime | None) -> services.Identity:
    if persona not in PERSONA_ROLES:
        raise ValueError(f"unknown persona {persona!r}; one of {', '.join(PERSONA_ROLES)}")
    return services.Identity(
        issuer=TEST_ISSUER, subject=f"persona-{persona}", username=persona,
        display_name=f"{persona.title()} Persona", email=f"{persona}@finci.example",
        roles=frozenset(PERSONA_ROLES[persona]), auth_time=auth_time)


def sign_in_client(app, db_session, client, persona: str, *, at: dt.datetime | None = None,
                   auth_time: dt.datetime | None = None):
    """Start a session for ``persona`` and put its cookie in ``client``.

    Sets ``client.csrf_token`` (send it as ``csrf_token`` form field or ``X-CSRF-Token``
    header) and ``client.user_id``. ``auth_time`` defaults to now (a fresh login, so step-up
    protected actions pass); pass an older one to test step-up.
    """
    at = at or app.extensions.get("clock", utcnow)()
    with app.app_context():
        user, started = services.login(
            db_session, persona_identity(persona, auth_time=auth_time or at),
            origin=Actor(ActorType.ANONYMOUS, "anonymous"), at=at,
            limits=app.extensions["session_limits"])
        user_id = user.id
    db_session.commit()
    client.set_cookie(COOKIE_NAME, started.token, domain="localhost", path="/", secure=True,
                      httponly=True, samesite="Lax")
    client.csrf_token = started.data[csrf.SESSION_KEY]
    client.user_id = user_id
    return client
