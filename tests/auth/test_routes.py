"""Sign-in, sign-out and step-up through the real local OIDC provider (idp/, oidc-provider 8):
the console redeems real codes and validates real ID tokens."""

from __future__ import annotations

import datetime as dt
import json
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest
import requests
from flask import Blueprint
from sqlalchemy import select, update

from console.audit.models import AuditEvent
from console.auth.models import ConsoleSession, User
from console.auth.sessions import COOKIE_NAME
from console.auth.step_up import fresh_login_required
from console.security.permissions import Permission, require
from tests.auth.conftest import anonymous_csrf, csrf_from, with_oidc
from tests.support.oidc_provider import complete_login, complete_logout

pytestmark = pytest.mark.slow


@pytest.fixture
def settings(settings, idp):
    return with_oidc(settings, idp.issuer)


@pytest.fixture
def browser():
    """The user's browser as the identity provider sees it (its cookies, its pages)."""
    with requests.Session() as session:
        yield session


def _local(url: str) -> str:
    parts = urlsplit(url)
    assert parts.netloc == "localhost", url
    return urlunsplit(("", "", parts.path, parts.query, ""))


def _authorize_url(client, next_url: str = "/") -> str:
    response = client.post("/auth/login", data={"csrf_token": anonymous_csrf(client),
                                                "next": next_url})
    assert response.status_code == 303
    return response.headers["Location"]


def sso_login(client, browser, persona: str, next_url: str = "/"):
    callback = complete_login(browser, _authorize_url(client, next_url), persona)
    return client.get(_local(callback))


def _cookie(client) -> str | None:
    cookie = client.get_cookie(COOKIE_NAME, domain="localhost")
    return cookie.value if cookie else None


def _audit(db_session, action: str) -> list[AuditEvent]:
    return list(db_session.scalars(select(AuditEvent).where(AuditEvent.action == action)
                                   .order_by(AuditEvent.seq)))


@pytest.mark.parametrize(("persona", "roles"), [
    ("viewer", ["viewer"]), ("operator", ["operator"]), ("oncall", ["oncall"]),
    ("compliance", ["compliance"]), ("admin", ["admin"]), ("multi", ["compliance", "viewer"]),
])
def test_each_persona_signs_in_with_the_roles_its_groups_map_to(
        client, browser, db_session, persona, roles):
    response = sso_login(client, browser, persona, next_url="/?from=login")
    assert response.status_code == 302
    assert response.headers["Location"] == "/?from=login"
    user = db_session.scalar(select(User).where(User.subject == f"persona-{persona}"))
    assert user.role_names == roles
    assert user.username == persona
    page = client.get("/").get_data(as_text=True)
    assert f'data-testid="user-roles">{", ".join(roles)}<' in page
    login = _audit(db_session, "auth.session.login")[-1]
    assert (login.actor_id, login.outcome) == (persona, "success")
    assert json.loads(login.details)["roles"] == roles


def test_a_person_without_a_console_group_is_refused(client, browser, db_session):
    response = sso_login(client, browser, "outsider")
    assert response.status_code == 403
    assert "no role in this console" in response.get_data(as_text=True)
    assert db_session.scalar(select(User).where(User.subject == "persona-outsider")) is None
    refused = _audit(db_session, "auth.session.login")[-1]
    assert refused.outcome == "denied"
    assert json.loads(refused.details)["reason"] == "no_role"
    assert client.get("/").status_code == 302


def test_signing_in_renews_the_session_id(client, browser, db_session):
    authorize = _authorize_url(client)
    before = _cookie(client)
    assert before
    response = client.get(_local(complete_login(browser, authorize, "viewer")))
    after = _cookie(client)
    assert response.status_code == 302 and after and after != before
    assert len(db_session.scalars(select(ConsoleSession)).all()) == 1  # pre-login row gone
    client.set_cookie(COOKIE_NAME, before, domain="localhost", secure=True)
    assert client.get("/").status_code == 302


def test_sign_out_ends_the_session_here_and_at_the_provider(client, browser, idp, db_session):
    sso_login(client, browser, "operator")
    page = client.get("/")
    assert idp.issuer in page.headers["Content-Security-Policy"].split("form-action")[1]
    stolen = _cookie(client)
    response = client.post("/auth/logout", data={"csrf_token": csrf_from(page.text)})
    assert response.status_code == 303
    end_session = response.headers["Location"]
    assert end_session.startswith(idp.metadata["end_session_endpoint"])
    query = parse_qs(urlsplit(end_session).query)
    assert query["post_logout_redirect_uri"] == ["https://localhost/auth/signed-out"]
    assert query["id_token_hint"]
    back = complete_logout(browser, end_session)
    assert "You are signed out" in client.get(_local(back)).get_data(as_text=True)
    # The old cookie, replayed, opens nothing: the session row is gone.
    replay = client.application.test_client()
    replay.set_cookie(COOKIE_NAME, stolen, domain="localhost", secure=True)
    assert replay.get("/").status_code == 302
    assert _audit(db_session, "auth.session.logout")[-1].actor_id == "operator"
    # The provider's session ended too: signing in again shows its login page.
    again = complete_login(browser, _authorize_url(client), "viewer")
    assert client.get(_local(again)).status_code == 302
    assert "viewer" in client.get("/").get_data(as_text=True)


def test_a_tampered_state_is_refused(client, browser, db_session):
    callback = complete_login(browser, _authorize_url(client), "admin")
    parts = urlsplit(callback)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query["state"] = query["state"][::-1]
    response = client.get(f"/auth/callback?{urlencode(query)}")
    assert response.status_code == 400
    assert json.loads(_audit(db_session, "auth.session.login")[-1].details)["reason"] == \
        "state_mismatch"
    assert client.get("/").status_code == 302


def test_an_id_token_for_another_nonce_is_refused(client, browser, db_session):
    parts = urlsplit(_authorize_url(client))
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query["nonce"] = "nonce-of-another-login-attempt"
    forged = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))
    response = client.get(_local(complete_login(browser, forged, "admin")))
    assert response.status_code == 400
    assert json.loads(_audit(db_session, "auth.session.login")[-1].details)["reason"] == \
        "id_token_nonce_mismatch"


def test_an_expired_id_token_is_refused(app, client, browser, clock, db_session):
    callback = complete_login(browser, _authorize_url(client), "admin")
    clock.advance(minutes=8)  # the provider's ID tokens live 300 s
    response = client.get(_local(callback))
    assert response.status_code == 400
    assert json.loads(_audit(db_session, "auth.session.login")[-1].details)["reason"] == \
        "id_token_claims_expired_token"


def _probe_app(app):
    probe = Blueprint("probe", __name__)

    @probe.post("/probe/reveal")
    @require(Permission.VIEW_PANELS)
    @fresh_login_required
    def reveal():
        return "revealed"

    app.register_blueprint(probe)


def test_step_up_sends_the_user_back_through_the_provider_for_a_fresh_login(
        app, client, browser, db_session):
    _probe_app(app)
    sso_login(client, browser, "operator")
    token = csrf_from(client.get("/").text)
    db_session.execute(update(ConsoleSession).values(
        auth_time=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30)))
    db_session.commit()
    refused = client.post("/probe/reveal", headers={"X-CSRF-Token": token, "HX-Request": "true",
                                                    "HX-Current-URL": "https://localhost/"})
    assert refused.status_code == 401
    assert refused.headers["HX-Redirect"] == "/auth/step-up?next=/"
    page = client.get("/auth/step-up?next=/")
    response = client.post("/auth/step-up", data={"csrf_token": csrf_from(page.text),
                                                  "next": "/"})
    authorize = response.headers["Location"]
    assert {"prompt": ["login"], "max_age": ["0"]}.items() <= parse_qs(
        urlsplit(authorize).query).items()
    # prompt=login: the provider asks again even though its own session is alive.
    callback = complete_login(browser, authorize, "operator")
    assert client.get(_local(callback)).status_code == 302
    token = csrf_from(client.get("/").text)
    assert client.post("/probe/reveal", headers={"X-CSRF-Token": token}).text == "revealed"
    step_up = _audit(db_session, "auth.session.step_up")[-1]
    assert (step_up.actor_id, step_up.outcome) == ("operator", "success")


def test_step_up_as_someone_else_is_refused(app, client, browser, db_session):
    sso_login(client, browser, "operator")
    page = client.get("/auth/step-up?next=/")
    response = client.post("/auth/step-up", data={"csrf_token": csrf_from(page.text),
                                                  "next": "/"})
    # Another person at the same console (a fresh browser at the provider) confirms instead.
    with requests.Session() as other:
        callback = complete_login(other, response.headers["Location"], "admin")
    refused = client.get(_local(callback))
    assert refused.status_code == 403
    assert json.loads(_audit(db_session, "auth.session.step_up")[-1].details)["reason"] == \
        "step_up_other_user"
    assert "operator" in client.get("/").get_data(as_text=True)  # still the operator


def _sso_secret(db_session):
    from console.audit.services import Actor
    from console.keys import inventory
    from console.keys.inventory import Kind
    from tests.auth.conftest import CLIENT_SECRET

    credential = inventory.create(
        db_session, Actor.system("test"), kind=Kind.SSO_CLIENT_SECRET, name="OIDC_CLIENT_SECRET",
        environment="sandbox", fingerprint=inventory.fingerprint(CLIENT_SECRET.encode()),
        at=dt.datetime.now(dt.UTC), reason="test", activate=True)
    db_session.commit()
    return credential


def _last_used(db_session, credential):
    db_session.expire_all()
    return db_session.get(type(credential), credential.id).last_used_at


def test_a_redeemed_code_marks_the_sso_client_secret_used(client, browser, db_session):
    credential = _sso_secret(db_session)
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    response = sso_login(client, browser, "viewer")
    assert response.status_code == 302
    assert _last_used(db_session, credential) is None  # not before the answer has been sent
    response.close()  # what the WSGI server does once the answer is sent
    assert _last_used(db_session, credential) >= before


def test_a_callback_refused_before_redeeming_leaves_the_secret_unused(client, browser,
                                                                       db_session):
    credential = _sso_secret(db_session)
    callback = complete_login(browser, _authorize_url(client), "viewer")
    parts = urlsplit(callback)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query["state"] = "tampered"
    response = client.get(f"{parts.path}?{urlencode(query)}")
    assert response.status_code == 400
    response.close()
    assert _last_used(db_session, credential) is None
