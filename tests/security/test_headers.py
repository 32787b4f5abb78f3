import pytest
from flask import abort

from console.security.permissions import public

REQUIRED = ["Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy",
            "Strict-Transport-Security", "Cache-Control", "X-Request-Id"]


@pytest.fixture
def app_with_failures(app):
    @app.get("/__boom")
    @public
    def boom():
        raise RuntimeError("kaboom 4111111111111111")

    @app.get("/__forbidden")
    @public
    def forbidden():
        abort(403)

    app.config["TESTING"] = False
    app.config["PROPAGATE_EXCEPTIONS"] = False
    return app


@pytest.mark.parametrize(("path", "status"), [
    ("/healthz", 200), ("/no-such-page", 404), ("/__boom", 500), ("/__forbidden", 403),
])
def test_security_headers_on_every_response(app_with_failures, path, status):
    response = app_with_failures.test_client().get(path, base_url="https://localhost")
    assert response.status_code == status
    for name in REQUIRED:
        assert name in response.headers, name
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "'nonce-" in csp and "unsafe-inline" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    assert "HX-Request" in response.headers.get("Vary", "")


def test_error_pages_reveal_nothing(app_with_failures):
    response = app_with_failures.test_client().get("/__boom", base_url="https://localhost")
    body = response.get_data(as_text=True)
    assert "kaboom" not in body and "Traceback" not in body


def test_each_response_gets_its_own_nonce(client):
    first = client.get("/healthz").headers["Content-Security-Policy"]
    second = client.get("/healthz").headers["Content-Security-Policy"]
    assert first != second


@pytest.fixture
def behind_proxy(settings, test_database):
    """A console deployed behind one trusted reverse proxy (CONSOLE_TRUSTED_PROXY_COUNT=1)."""
    from console import create_app

    app = create_app(settings.replace(trusted_proxy_count=1), database=test_database)
    return app.test_client()


def _through_proxy(request_id: str) -> dict:
    return {"X-Request-Id": request_id, "X-Forwarded-For": "203.0.113.7"}


def test_a_well_formed_request_id_from_a_trusted_proxy_is_kept_and_a_bad_one_replaced(
        behind_proxy):
    assert behind_proxy.get("/healthz", headers=_through_proxy("abc-12345678")).headers[
        "X-Request-Id"] == "abc-12345678"
    replaced = behind_proxy.get("/healthz", headers=_through_proxy("<script>")).headers[
        "X-Request-Id"]
    assert replaced != "<script>" and len(replaced) == 24


def test_a_request_id_from_a_client_is_never_taken(client, behind_proxy):
    # No trusted proxies configured: whoever connects is the client.
    direct = client.get("/healthz", headers=_through_proxy("abc-12345678"))
    assert direct.headers["X-Request-Id"] != "abc-12345678"
    assert len(direct.headers["X-Request-Id"]) == 24
    # Proxies configured, but this request did not come through them.
    bypassed = behind_proxy.get("/healthz", headers={"X-Request-Id": "abc-12345678"})
    assert bypassed.headers["X-Request-Id"] != "abc-12345678"


@pytest.mark.parametrize("card_like", ["4111111111111111", "4111-1111-1111-1111",
                                       "req-4111.1111.1111.1111", "x_4111_1111_1111_1111",
                                       "2510014359631467"])
def test_an_upstream_request_id_that_could_hold_a_card_number_is_replaced(behind_proxy,
                                                                           card_like):
    # It would be written into the append-only audit log, where it could never be masked.
    replaced = behind_proxy.get("/healthz", headers=_through_proxy(card_like)).headers[
        "X-Request-Id"]
    assert replaced != card_like and len(replaced) == 24


def test_hsts_can_be_switched_off_for_plain_http_development(settings, test_database):
    from console import create_app

    app = create_app(settings.replace(hsts=False), database=test_database)
    assert "Strict-Transport-Security" not in app.test_client().get("/healthz").headers


def test_static_files_are_cacheable_but_still_protected(client):
    response = client.get("/static/css/console.css")
    assert response.status_code == 200
    assert response.headers["Cache-Control"].startswith("public")
    assert "Content-Security-Policy" in response.headers
    response.close()
