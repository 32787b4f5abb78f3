"""Every unsafe route refuses a request without the session's CSRF token, before the view runs
(walks app.url_map, so routes added later are covered too). Machine blueprints (the signed
webhook ingress) are the declared exception."""

from __future__ import annotations

import pytest

from console import MACHINE_BLUEPRINTS
from tests.auth.test_permission_matrix import UNSAFE, _routes, _sample_url


def _unsafe_routes(app):
    for rule, method in _routes(app):
        if method in UNSAFE and rule.endpoint.split(".", 1)[0] not in MACHINE_BLUEPRINTS:
            yield rule, method


@pytest.fixture
def never_enforced(app):
    called = []
    app.extensions["permission_enforcer"] = called.append
    return called


@pytest.mark.parametrize("attack", ["no-token", "wrong-token", "foreign-origin"])
def test_every_unsafe_route_refuses_a_request_without_a_valid_csrf_token(
        app, as_admin, never_enforced, attack):
    routes = list(_unsafe_routes(app))
    assert len(routes) >= 4
    for rule, method in routes:
        url = _sample_url(rule)
        headers = {"no-token": {},
                   "wrong-token": {"X-CSRF-Token": as_admin.csrf_token[::-1]},
                   "foreign-origin": {"X-CSRF-Token": as_admin.csrf_token,
                                      "Origin": "https://evil.example"}}[attack]
        response = as_admin.open(url, method=method, headers=headers,
                                 data={"csrf_token": headers.get("X-CSRF-Token", "")})
        assert response.status_code == 403, f"{method} {url} ({attack})"
        assert "This form has expired" in response.get_data(as_text=True)
    assert never_enforced == []


def test_anonymous_sign_in_forms_need_the_token_too(client):
    for path in ("/auth/login", "/auth/logout", "/auth/step-up"):
        assert client.post(path).status_code == 403
