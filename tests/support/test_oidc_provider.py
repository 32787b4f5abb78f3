"""The local OIDC provider behaves like the real thing the console relies on."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.support.oidc_provider import (
    OidcProvider,
    complete_login,
    complete_logout,
    parse_forms,
)

pytestmark = pytest.mark.slow

CLIENT_ID = "finci-console-test"
CLIENT_SECRET = "test-secret-" + "x" * 20
REDIRECT_URI = "http://127.0.0.1:5999/auth/callback"
POST_LOGOUT_URI = "http://127.0.0.1:5999/signed-out"


@pytest.fixture(scope="module")
def idp():
    with OidcProvider(CLIENT_ID, CLIENT_SECRET, [REDIRECT_URI], [POST_LOGOUT_URI]) as provider:
        yield provider


def _authorize_url(idp: OidcProvider, **extra: str) -> tuple[str, dict[str, str]]:
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    request = {
        "state": secrets.token_urlsafe(16),
        "nonce": secrets.token_urlsafe(16),
        "verifier": verifier,
    }
    params = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid email profile groups",
        "state": request["state"],
        "nonce": request["nonce"],
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    return f"{idp.metadata['authorization_endpoint']}?{urlencode(params)}", request


def _redeem(idp: OidcProvider, location: str, request: dict[str, str], *, basic: bool) -> dict:
    assert location.startswith(REDIRECT_URI + "?")
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == [request["state"]]
    assert query["iss"] == [idp.issuer]
    form = {
        "grant_type": "authorization_code",
        "code": query["code"][0],
        "redirect_uri": REDIRECT_URI,
        "code_verifier": request["verifier"],
    }
    if basic:
        response = requests.post(
            idp.metadata["token_endpoint"], data=form, auth=(CLIENT_ID, CLIENT_SECRET), timeout=5
        )
    else:
        form |= {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
        response = requests.post(idp.metadata["token_endpoint"], data=form, timeout=5)
    assert response.status_code == 200, response.text
    tokens = response.json()
    token = jwt.decode(tokens["id_token"], KeySet.import_key_set(idp.jwks()), algorithms=["RS256"])
    assert token.header["alg"] == "RS256"
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": idp.issuer},
        aud={"essential": True, "value": CLIENT_ID},
        nonce={"essential": True, "value": request["nonce"]},
        sub={"essential": True},
        exp={"essential": True},
        auth_time={"essential": True},
    ).validate(token.claims)
    return token.claims


def _shows_persona_page(session: requests.Session, url: str) -> bool:
    for _ in range(5):
        response = session.get(url, allow_redirects=False, timeout=5)
        if not response.is_redirect:
            forms = parse_forms(response.text)
            return any(("persona", "operator") in form.fields for form in forms)
        url = requests.compat.urljoin(url, response.headers["Location"])
        if url.startswith(REDIRECT_URI):
            return False
    raise AssertionError("redirect loop")


def test_discovery_advertises_what_the_console_needs(idp):
    meta = idp.metadata
    assert meta["issuer"] == idp.issuer
    assert idp.issuer.startswith("http://127.0.0.1:")
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["end_session_endpoint"]
    assert meta["id_token_signing_alg_values_supported"] == ["RS256"]
    assert set(meta["token_endpoint_auth_methods_supported"]) >= {
        "client_secret_basic",
        "client_secret_post",
    }
    assert {"openid", "email", "profile", "groups"} <= set(meta["scopes_supported"])


def test_pkce_is_required(idp):
    url, _ = _authorize_url(idp)
    split = urlsplit(url)
    params = {k: v for k, v in parse_qs(split.query).items() if not k.startswith("code_challenge")}
    no_pkce = split._replace(query=urlencode(params, doseq=True)).geturl()
    response = requests.get(no_pkce, allow_redirects=False, timeout=5)
    assert response.is_redirect
    error = parse_qs(urlsplit(response.headers["Location"]).query)
    assert error["error"] == ["invalid_request"]
    assert "PKCE" in error["error_description"][0]

    plain = url.replace("code_challenge_method=S256", "code_challenge_method=plain")
    response = requests.get(plain, allow_redirects=False, timeout=5)
    error = parse_qs(urlsplit(response.headers["Location"]).query)
    assert error["error"] == ["invalid_request"]


def test_login_step_up_and_logout(idp):
    session = requests.Session()

    url, request = _authorize_url(idp)
    claims = _redeem(idp, complete_login(session, url, "operator"), request, basic=True)
    assert claims["sub"] == "persona-operator"
    assert claims["groups"] == ["console-operators"]
    assert claims["preferred_username"] == "operator"
    assert claims["email"] == "operator@finci.example"
    assert claims["name"]
    first_auth_time = claims["auth_time"]

    # Single sign-on: a plain second request is answered without any page.
    url, request = _authorize_url(idp)
    assert not _shows_persona_page(session, url)

    # Step-up: prompt=login must show the persona page again and refresh auth_time.
    time.sleep(1.05)
    url, request = _authorize_url(idp, prompt="login")
    assert _shows_persona_page(session, url)
    url, request = _authorize_url(idp, prompt="login")
    claims = _redeem(idp, complete_login(session, url, "operator"), request, basic=False)
    assert claims["auth_time"] > first_auth_time
    assert claims["groups"] == ["console-operators"]

    # max_age=0 is a step-up request too.
    url, _ = _authorize_url(idp, max_age="0")
    assert _shows_persona_page(session, url)

    # RP-initiated logout returns to the registered URI with state, and ends the IdP session.
    state = secrets.token_urlsafe(8)
    end_session = (
        idp.metadata["end_session_endpoint"]
        + "?"
        + urlencode(
            {"client_id": CLIENT_ID, "post_logout_redirect_uri": POST_LOGOUT_URI, "state": state}
        )
    )
    location = complete_logout(session, end_session)
    assert location.startswith(POST_LOGOUT_URI + "?")
    assert parse_qs(urlsplit(location).query)["state"] == [state]
    url, _ = _authorize_url(idp)
    assert _shows_persona_page(session, url)


def test_multi_group_persona_and_outsider(idp):
    url, request = _authorize_url(idp)
    claims = _redeem(idp, complete_login(requests.Session(), url, "multi"), request, basic=True)
    assert claims["groups"] == ["console-viewers", "console-compliance"]

    url, request = _authorize_url(idp)
    claims = _redeem(idp, complete_login(requests.Session(), url, "outsider"), request, basic=True)
    assert claims["sub"] == "persona-outsider"
    assert claims["groups"] == []


def test_cancel_returns_access_denied(idp):
    session = requests.Session()
    url, request = _authorize_url(idp)
    for _ in range(5):
        response = session.get(url, allow_redirects=False, timeout=5)
        if not response.is_redirect:
            break
        url = requests.compat.urljoin(url, response.headers["Location"])
    assert "Local demo identity provider — not for production" in response.text
    (cancel,) = [f for f in parse_forms(response.text) if f.action.endswith("/abort")]
    assert cancel.buttons[0][2] == "Cancel sign-in"
    response = session.post(
        requests.compat.urljoin(url, cancel.action),
        data=cancel.data(),
        allow_redirects=False,
        timeout=5,
    )
    while not response.headers["Location"].startswith(REDIRECT_URI):
        url = requests.compat.urljoin(url, response.headers["Location"])
        response = session.get(url, allow_redirects=False, timeout=5)
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query["error"] == ["access_denied"]
    assert query["state"] == [request["state"]]
