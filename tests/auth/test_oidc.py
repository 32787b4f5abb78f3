"""The relying party refuses every ID token a real provider would never issue (served by a
misbehaving fake provider), and sends PKCE, state and nonce."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from joserfc.jwk import OctKey, RSAKey
from sqlalchemy import select

from console.audit.models import AuditEvent
from tests.auth.conftest import CLIENT_ID, CLIENT_SECRET, anonymous_csrf, with_oidc
from tests.auth.fake_op import FakeProvider


@pytest.fixture(scope="module")
def op():
    with FakeProvider(CLIENT_ID) as provider:
        yield provider


@pytest.fixture
def settings(settings, op):
    return with_oidc(settings, op.issuer)


def _start(client, path="/auth/login", **form) -> dict[str, str]:
    token = getattr(client, "csrf_token", None) or anonymous_csrf(client)
    response = client.post(path, data={"csrf_token": token, "next": "/", **form})
    assert response.status_code == 303, response.get_data(as_text=True)
    return {k: v[0] for k, v in parse_qs(urlsplit(response.headers["Location"]).query).items()}


def _callback(client, request: dict[str, str], **extra):
    query = {"code": "the-code", "state": request["state"], **extra}
    return client.get(f"/auth/callback?{urlencode(query)}")


def _failures(db_session) -> list[str]:
    rows = db_session.scalars(select(AuditEvent).where(
        AuditEvent.action == "auth.session.login", AuditEvent.outcome == "failure"))
    return [json.loads(row.details)["reason"] for row in rows]


def _unsigned(claims: dict) -> str:
    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none'})}.{part(claims)}."


def test_a_valid_id_token_signs_the_user_in(client, op, db_session):
    request = _start(client)
    op.id_token = op.sign(op.claims(request["nonce"]))
    response = _callback(client, request)
    assert response.status_code == 302
    assert client.get("/").status_code == 200


def test_authorization_request_carries_pkce_s256_state_and_nonce(client, op):
    request = _start(client)
    assert request["response_type"] == "code"
    assert request["code_challenge_method"] == "S256"
    assert len(request["state"]) >= 32 and len(request["nonce"]) >= 32
    assert set(request["scope"].split()) >= {"openid", "groups"}
    op.id_token = op.sign(op.claims(request["nonce"]))
    op.token_requests.clear()
    _callback(client, request)
    verifier = op.token_requests[-1]["code_verifier"][0]
    digest = hashlib.sha256(verifier.encode()).digest()
    assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == request["code_challenge"]


def _rogue_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "good"})


@pytest.mark.parametrize(("forge", "reason"), [
    (lambda op, n: op.sign(op.claims(n), _rogue_key()), "id_token_bad_signature"),
    (lambda op, n: op.sign(op.claims(n), RSAKey.generate_key(2048), kid="rogue"),
     "id_token_key_unknown_after_refresh"),
    (lambda op, n: _unsigned(op.claims(n)), "id_token_unsupported_algorithm"),
    (lambda op, n: op.sign(op.claims(n), OctKey.import_key(CLIENT_SECRET), alg="HS256"),
     "id_token_unsupported_algorithm"),
    (lambda op, n: op.sign(op.claims(n, iat=int(time.time()) - 4000,
                                     exp=int(time.time()) - 3600)),
     "id_token_claims_expired_token"),
    (lambda op, n: op.sign(op.claims(n, iat=int(time.time()) + 3600)),
     "id_token_claims_invalid_claim"),
    (lambda op, n: op.sign(op.claims(n, aud="another-client")), "id_token_audience_mismatch"),
    (lambda op, n: op.sign(op.claims(n, aud=[CLIENT_ID, "other"])), "id_token_azp_mismatch"),
    (lambda op, n: op.sign(op.claims(n, iss="https://evil.example")),
     "id_token_issuer_mismatch"),
    (lambda op, n: op.sign(op.claims("a-different-nonce")), "id_token_nonce_mismatch"),
    (lambda op, n: op.sign({k: v for k, v in op.claims(n).items() if k != "nonce"}),
     "id_token_claims_missing_claim"),
], ids=["wrong-key", "unknown-kid", "alg-none", "hs256-client-secret", "expired",
        "issued-in-future", "wrong-audience", "foreign-azp", "wrong-issuer", "wrong-nonce",
        "no-nonce"])
def test_a_forged_or_invalid_id_token_is_refused(client, op, db_session, forge, reason):
    request = _start(client)
    op.id_token = forge(op, request["nonce"])
    response = _callback(client, request)
    assert response.status_code == 400
    assert "Sign-in did not complete" in response.get_data(as_text=True)
    assert _failures(db_session) == [reason]
    assert client.get("/").status_code == 302  # still anonymous


def test_a_tampered_state_is_refused_before_the_code_is_redeemed(client, op, db_session):
    request = _start(client)
    op.id_token = op.sign(op.claims(request["nonce"]))
    op.token_requests.clear()
    response = _callback(client, {"state": request["state"] + "x"})
    assert response.status_code == 400
    assert op.token_requests == []
    assert _failures(db_session) == ["state_mismatch"]


def test_a_state_is_good_for_one_callback_only(client, op, db_session):
    request = _start(client)
    op.id_token = op.sign(op.claims(request["nonce"]))
    assert _callback(client, request).status_code == 302
    assert _callback(client, request).status_code == 400


def test_a_response_naming_another_issuer_is_refused(client, op, db_session):
    request = _start(client)
    response = _callback(client, request, iss="https://evil.example")
    assert response.status_code == 400
    assert _failures(db_session) == ["issuer_mismatch"]


def test_an_error_from_the_provider_is_refused_and_audited(client, op, db_session):
    request = _start(client)
    response = client.get(f"/auth/callback?error=access_denied&state={request['state']}")
    assert response.status_code == 400
    assert _failures(db_session) == ["idp_access_denied"]


def test_step_up_requires_auth_time_in_the_id_token(client, op, sign_in, db_session):
    sign_in(client, "operator")
    request = _start(client, "/auth/step-up")
    assert request["prompt"] == "login" and request["max_age"] == "0"
    op.id_token = op.sign(op.claims(request["nonce"], auth_time=None))
    assert _callback(client, request).status_code == 400
    assert _failures(db_session) == ["id_token_auth_time_missing"]


def test_step_up_refuses_a_stale_auth_time(client, op, sign_in, db_session):
    sign_in(client, "operator")
    request = _start(client, "/auth/step-up")
    op.id_token = op.sign(op.claims(request["nonce"], auth_time=int(time.time()) - 3600))
    assert _callback(client, request).status_code == 400
    assert _failures(db_session) == ["id_token_auth_time_stale"]


def test_an_unreachable_provider_gives_a_clear_page_not_an_error(app, client, op):
    app.extensions["oidc_client"].settings = app.extensions["oidc_client"].settings.__class__(
        issuer="http://127.0.0.1:9", client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
        allow_http_issuer=True, http_timeout_s=0.5)
    response = client.post("/auth/login", data={"csrf_token": anonymous_csrf(client)})
    assert response.status_code == 503
    assert "identity provider is unreachable" in response.get_data(as_text=True)


def test_while_the_provider_is_down_the_sign_in_page_does_not_wait_on_it(app, client, op):
    from console.auth.oidc import OidcClient, OidcError

    oidc = OidcClient(app.extensions["oidc_client"].settings.__class__(
        issuer="http://127.0.0.1:9", client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
        allow_http_issuer=True, http_timeout_s=0.5))
    calls = []
    real_get = oidc.http.get
    oidc.http.get = lambda *a, **k: calls.append(a) or real_get(*a, **k)
    for _ in range(3):
        with pytest.raises(OidcError, match="discovery_unreachable"):
            oidc.metadata()
    assert len(calls) == 1
