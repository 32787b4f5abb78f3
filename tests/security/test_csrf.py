from flask import session

from console.security.permissions import public


def _app_with_form(app):
    @app.post("/__form")
    @public
    def form():
        return "changed"

    @app.get("/__token")
    @public
    def token():
        from console.security.csrf import csrf_token

        return csrf_token()

    return app


def test_unsafe_request_without_token_is_refused(app):
    client = _app_with_form(app).test_client()
    response = client.post("/__form", base_url="https://localhost")
    assert response.status_code == 403


def test_unsafe_request_with_the_session_token_passes_in_header_or_form(app):
    client = _app_with_form(app).test_client()
    token = client.get("/__token", base_url="https://localhost").get_data(as_text=True)
    assert client.post("/__form", base_url="https://localhost",
                       headers={"X-CSRF-Token": token}).status_code == 200
    assert client.post("/__form", base_url="https://localhost",
                       data={"csrf_token": token}).status_code == 200


def test_a_wrong_token_or_foreign_origin_is_refused(app):
    client = _app_with_form(app).test_client()
    token = client.get("/__token", base_url="https://localhost").get_data(as_text=True)
    assert client.post("/__form", base_url="https://localhost",
                       headers={"X-CSRF-Token": token + "x"}).status_code == 403
    assert client.post("/__form", base_url="https://localhost",
                       headers={"X-CSRF-Token": token,
                                "Origin": "https://evil.example"}).status_code == 403


def test_an_unsafe_method_a_route_does_not_take_is_405_not_a_csrf_refusal(app):
    # No view runs for a method the route does not accept, so there is nothing to protect.
    client = _app_with_form(app).test_client()
    response = client.put("/__form", base_url="https://localhost")
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]


def test_rotate_invalidates_the_old_token(app):
    from console.security.csrf import rotate

    with app.test_request_context("/"):
        session["_csrf"] = "old"
        rotate()
        assert session["_csrf"] != "old"


def test_a_same_origin_request_with_the_token_passes_and_another_scheme_is_foreign(app):
    client = _app_with_form(app).test_client()
    token = client.get("/__token", base_url="https://localhost").get_data(as_text=True)
    assert client.post("/__form", base_url="https://localhost",
                       headers={"X-CSRF-Token": token,
                                "Origin": "https://localhost"}).status_code == 200
    assert client.post("/__form", base_url="https://localhost",
                       headers={"X-CSRF-Token": token,
                                "Origin": "http://localhost"}).status_code == 403
