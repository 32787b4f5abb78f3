"""fresh_login_required: marked actions need a sign-in younger than five minutes."""

from __future__ import annotations

import datetime as dt

import pytest
from flask import Blueprint
from flask.testing import FlaskClient

from console import create_app
from console.auth.step_up import fresh_login_required
from console.security.permissions import Permission, require
from console.settings import Environment
from tests.auth.conftest import Clock


def _probe(app) -> None:
    probe = Blueprint("probe", __name__)

    @probe.route("/probe/reveal", methods=["GET", "POST"])
    @require(Permission.VIEW_PANELS)
    @fresh_login_required
    def reveal():
        return "revealed"

    @probe.post("/probe/kill")
    @require(Permission.VIEW_PANELS)
    @fresh_login_required(only_in_production=True)
    def kill():
        return "killed"

    @probe.post("/probe/keys")
    @require(Permission.MANAGE_KEYS)
    @fresh_login_required
    def keys():
        return "rotated"

    app.register_blueprint(probe)


@pytest.fixture
def probe_app(app):
    _probe(app)
    return app


def test_a_fresh_sign_in_may_act(probe_app, clock, sign_in):
    client = sign_in(probe_app.test_client(), "viewer")
    clock.advance(minutes=4, seconds=59)
    assert client.get("/probe/reveal").text == "revealed"


def test_an_old_sign_in_is_sent_to_step_up_and_back(probe_app, clock, sign_in):
    client = sign_in(probe_app.test_client(), "viewer")
    clock.advance(minutes=5, seconds=1)
    response = client.get("/probe/reveal?card=1")
    assert response.status_code == 302
    assert response.headers["Location"] == "/auth/step-up?next=/probe/reveal?card%3D1"


def test_an_old_sign_in_posting_a_form_returns_to_the_page_it_came_from(
        probe_app, clock, sign_in):
    client = sign_in(probe_app.test_client(), "viewer")
    clock.advance(minutes=6)
    response = client.post("/probe/reveal", data={"csrf_token": client.csrf_token},
                           headers={"Referer": "https://localhost/cards/1"})
    assert response.status_code == 303
    assert response.headers["Location"] == "/auth/step-up?next=/cards/1"


def test_an_old_sign_in_in_htmx_gets_hx_redirect(probe_app, clock, sign_in):
    client = sign_in(probe_app.test_client(), "viewer")
    clock.advance(minutes=6)
    response = client.post("/probe/reveal", headers={
        "X-CSRF-Token": client.csrf_token, "HX-Request": "true",
        "HX-Current-URL": "https://localhost/cards/1"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"] == "/auth/step-up?next=/cards/1"


def test_permission_is_checked_before_freshness(probe_app, clock, sign_in):
    client = sign_in(probe_app.test_client(), "viewer")
    clock.advance(minutes=6)
    response = client.post("/probe/keys", headers={"X-CSRF-Token": client.csrf_token})
    assert response.status_code == 403


def test_production_only_step_up_is_skipped_in_sandbox(probe_app, clock, sign_in):
    client = sign_in(probe_app.test_client(), "viewer")
    clock.advance(minutes=10)
    response = client.post("/probe/kill", headers={"X-CSRF-Token": client.csrf_token})
    assert response.text == "killed"


def test_production_only_step_up_applies_in_production(settings, test_database, db_session):
    from tests.support.personas import sign_in_client

    app = create_app(settings.replace(environment=Environment.PRODUCTION),
                     database=test_database)
    app.test_client_class = _HttpsClient
    _probe(app)
    clock = app.extensions["clock"] = Clock(dt.datetime.now(dt.UTC))
    client = sign_in_client(app, db_session, app.test_client(), "viewer")
    assert client.post("/probe/kill", headers={"X-CSRF-Token": client.csrf_token}).text \
        == "killed"
    clock.advance(minutes=6)
    response = client.post("/probe/kill", headers={"X-CSRF-Token": client.csrf_token})
    assert response.status_code == 303


class _HttpsClient(FlaskClient):
    def open(self, *args, **kwargs):
        kwargs.setdefault("base_url", "https://localhost")
        return super().open(*args, **kwargs)


def test_the_decorator_is_visible_to_introspection(probe_app):
    assert probe_app.view_functions["probe.reveal"].requires_fresh_login
    assert probe_app.view_functions["probe.reveal"].required_permission == \
        Permission.VIEW_PANELS


def test_the_step_up_page_offers_a_fresh_sign_in(probe_app, sign_in):
    client = sign_in(probe_app.test_client(), "viewer")
    page = client.get("/auth/step-up?next=/cards/1")
    assert page.status_code == 200
    assert "Confirm your identity" in page.text


def test_the_step_up_page_sends_anonymous_visitors_to_sign_in(client):
    response = client.get("/auth/step-up?next=/cards/1")
    assert response.headers["Location"] == "/auth/login?next=/cards/1"


def _sensitive_app(settings, test_database, **auth):
    from console.auth.settings import SensitiveAction
    from console.auth.step_up import step_up_required

    app = create_app(settings.replace(auth=settings.auth.__class__(
        **{**settings.auth.__dict__, **auth})), database=test_database)
    app.test_client_class = _HttpsClient
    probe = Blueprint("sensitive", __name__)

    @probe.post("/probe/rules")
    @require(Permission.VIEW_PANELS)
    @step_up_required(SensitiveAction.RULES)
    def rules():
        return "changed"

    app.register_blueprint(probe)
    app.extensions["clock"] = Clock(dt.datetime.now(dt.UTC))
    return app


@pytest.mark.parametrize(("environment", "actions", "asked"), [
    (Environment.PRODUCTION, None, True),     # on by default in production
    (Environment.SANDBOX, None, False),       # off by default in the sandbox
    (Environment.PRODUCTION, frozenset(), False),
    (Environment.SANDBOX, frozenset({"rules"}), True),
])
def test_step_up_for_a_sensitive_action_follows_the_setting(
        settings, test_database, db_session, environment, actions, asked):
    from console.auth.settings import SensitiveAction
    from tests.support.personas import sign_in_client

    configured = None if actions is None else frozenset(SensitiveAction(a) for a in actions)
    app = _sensitive_app(settings.replace(environment=environment), test_database,
                         step_up_actions=configured)
    client = sign_in_client(app, db_session, app.test_client(), "viewer")
    app.extensions["clock"].advance(minutes=6)
    response = client.post("/probe/rules", headers={"X-CSRF-Token": client.csrf_token})
    if asked:
        assert response.status_code == 303
        assert response.headers["Location"].startswith("/auth/step-up")
    else:
        assert response.text == "changed"


def test_every_sensitive_action_with_a_console_route_is_guarded(app):
    from console.auth.settings import SensitiveAction

    guarded = {getattr(view, "sensitive_action", None) for view in app.view_functions.values()}
    # Keys and credentials are rotated with the CLI only; every other action has a guarded route.
    assert guarded >= set(SensitiveAction) - {SensitiveAction.KEYS}
    for endpoint in ("audit.export", "decisioning.save_rules", "flows.change"):
        if endpoint in app.view_functions:
            assert app.view_functions[endpoint].requires_fresh_login


def test_step_up_actions_are_parsed_and_bad_names_refused():
    from console.auth.settings import AuthSettings, SensitiveAction
    from console.settings import ConfigError

    def parse(raw):
        return AuthSettings.from_env({"STEP_UP_ACTIONS": raw}, relaxed=False).step_up_actions

    assert parse("") is None
    assert parse("all") == frozenset(SensitiveAction)
    assert parse("none") == frozenset()
    assert parse("rules, replays") == {SensitiveAction.RULES, SensitiveAction.REPLAYS}
    with pytest.raises(ConfigError, match="STEP_UP_ACTIONS"):
        parse("everything")
