"""Fixtures for identity tests: an injectable clock, CSRF tokens of anonymous sessions, the real
local OIDC provider (one per test session) and settings pointing the console at it."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from console.auth.settings import AuthSettings
from console.db import utcnow
from tests.support.oidc_provider import OidcProvider

CLIENT_ID = "finci-console-test"
CLIENT_SECRET = "client-secret-" + "c" * 24
CALLBACK = "https://localhost/auth/callback"
SIGNED_OUT = "https://localhost/auth/signed-out"

# The token is in every page's <body hx-headers> (and in each form).
_CSRF = re.compile(r'"X-CSRF-Token": "([^"]+)"|name="csrf_token" value="([^"]+)"')


def csrf_from(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "page has no CSRF token"
    return match.group(1) or match.group(2)


def anonymous_csrf(client) -> str:
    """An anonymous session's CSRF token (the login page creates the session)."""
    return csrf_from(client.get("/auth/login").get_data(as_text=True))


class Clock:
    def __init__(self, start: dt.datetime):
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta) -> None:
        self.now += dt.timedelta(**delta)


@pytest.fixture
def clock(app) -> Clock:
    """Install before signing anyone in: sessions are stamped with this clock."""
    installed = app.extensions["clock"] = Clock(utcnow())
    return installed


@pytest.fixture(scope="session")
def idp():
    with OidcProvider(CLIENT_ID, CLIENT_SECRET, [CALLBACK], [SIGNED_OUT]) as provider:
        yield provider


def oidc_auth_settings(issuer: str, **overrides) -> AuthSettings:
    values = dict(issuer=issuer, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                  allow_http_issuer=True)
    values.update(overrides)
    return AuthSettings(**values)


def with_oidc(settings, issuer: str, **overrides):
    return settings.replace(auth=oidc_auth_settings(issuer, **overrides))
