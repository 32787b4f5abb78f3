"""Every registered route x every role (and anonymous) against its declared permission.

Expectations are derived, not listed: a route's declaration (``@require(P)`` / ``@public``) and
``ROLE_PERMISSIONS`` say who gets in. New routes are covered the moment they are registered; a
route with no declaration fails here, and a public one must be added to PUBLIC_ENDPOINTS on
purpose. Views are not executed: once the enforcer lets a request through, the probe answers
for the view, so walking POST routes has no side effects.
"""

from __future__ import annotations

import uuid

import pytest
from flask import Response, abort
from werkzeug.routing import IntegerConverter, UUIDConverter

from console.security.permissions import (
    PUBLIC,
    ROLE_PERMISSIONS,
    Permission,
    Role,
    declared_permission,
)
from tests.auth.conftest import anonymous_csrf

# Reachable without signing in, deliberately. Adding a public endpoint means adding it here.
PUBLIC_ENDPOINTS = {
    "static",
    "health.healthz",
    "health.readyz",
    "metrics.metrics",            # Prometheus: its own bearer token (CONSOLE_METRICS_TOKEN)
    "ingress.receive",            # FINCI webhooks: authenticated by signature, not by session
    "auth.login",
    "auth.start_login",
    "auth.callback",
    "auth.logout",
    "auth.signed_out",
    "auth.step_up",               # checks for a signed-in user itself
    "auth.start_step_up",
    "auth.break_glass_login",
}
PERMITTED = 299  # the probe's answer: the enforcer let the request through
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


def _sample_url(rule) -> str:
    values = {}
    for name, converter in rule._converters.items():
        if isinstance(converter, IntegerConverter):
            values[name] = 1
        elif isinstance(converter, UUIDConverter):
            values[name] = uuid.UUID(int=1)
        else:
            values[name] = "x"
    return rule.build(values, append_unknown=False)[1]


def _routes(app):
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule, method


@pytest.fixture
def probed(app):
    """Record each permission the enforcer is asked about; answer for permitted views."""
    real = app.extensions["permission_enforcer"]
    asked: list[Permission] = []

    def enforce(permission):
        asked.append(permission)
        real(permission)
        abort(Response("permitted", status=PERMITTED))

    app.extensions["permission_enforcer"] = enforce
    return asked


def test_every_route_declares_a_permission_and_public_ones_are_allowlisted(app):
    undeclared = sorted(r.endpoint for r in app.url_map.iter_rules()
                        if declared_permission(app, r.endpoint) is None)
    assert undeclared == [], f"routes without @require/@public: {undeclared}"
    public = {r.endpoint for r in app.url_map.iter_rules()
              if declared_permission(app, r.endpoint) == PUBLIC}
    assert public <= PUBLIC_ENDPOINTS, f"not allowlisted as public: {public - PUBLIC_ENDPOINTS}"


@pytest.mark.parametrize("role", [None, *Role], ids=["anonymous", *(r.value for r in Role)])
def test_every_route_answers_each_role_as_declared(app, probed, sign_in, role):
    client = app.test_client()
    token = anonymous_csrf(client) if role is None else sign_in(client, role.value).csrf_token
    granted = ROLE_PERMISSIONS[role] if role else frozenset()
    checked = 0
    for rule, method in _routes(app):
        declared = declared_permission(app, rule.endpoint)
        if declared == PUBLIC or declared is None:
            continue  # the declaration test above covers these
        probed.clear()
        url = _sample_url(rule)
        headers = {"X-CSRF-Token": token} if method in UNSAFE else {}
        response = client.open(url, method=method, headers=headers)
        where = f"{method} {url} ({rule.endpoint}, needs {declared}) as {role or 'anonymous'}"
        assert probed == [declared], f"{where}: enforcer asked {probed}"
        if role is None:
            assert response.status_code in {302, 401}, where
            if response.status_code == 302:
                assert response.headers["Location"].startswith("/auth/login?next="), where
        elif declared in granted:
            assert response.status_code == PERMITTED, f"{where}: {response.status_code}"
        else:
            assert response.status_code == 403, f"{where}: {response.status_code}"
        checked += 1
    assert checked >= 5


def test_no_role_is_refused_everything(app):
    assert all(ROLE_PERMISSIONS[role] for role in Role)
