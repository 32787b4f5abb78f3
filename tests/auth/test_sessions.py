"""Server-side sessions: cookie flags, idle and absolute timeouts on an injected clock,
invalidation, and no sessions for machines."""

from __future__ import annotations

import hashlib
from contextlib import contextmanager

from flask import Blueprint, session
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError

from console.auth.models import ConsoleSession, User
from console.auth.sessions import COOKIE_NAME, POLL_HEADER, end_sessions_of
from console.security.permissions import Permission, require
from tests.auth.conftest import anonymous_csrf, csrf_from


def _set_cookie_header(response) -> str:
    cookies = [v for v in response.headers.getlist("Set-Cookie") if v.startswith(COOKIE_NAME)]
    assert len(cookies) == 1, response.headers.getlist("Set-Cookie")
    return cookies[0]


def test_the_cookie_is_host_prefixed_secure_httponly_lax_and_expires_with_the_browser(client):
    header = _set_cookie_header(client.get("/auth/login"))
    attributes = [part.strip().lower() for part in header.split(";")[1:]]
    assert set(attributes) == {"secure", "httponly", "path=/", "samesite=lax"}


def test_only_a_hash_of_the_cookie_is_stored(client, sign_in, db_session):
    sign_in(client, "viewer")
    token = client.get_cookie(COOKIE_NAME, domain="localhost").value
    stored = db_session.scalars(select(ConsoleSession.token_hash)).all()
    assert stored == [hashlib.sha256(token.encode()).hexdigest()]


def test_a_session_ends_after_fifteen_idle_minutes(client, clock, sign_in, db_session):
    sign_in(client, "viewer")
    clock.advance(minutes=14, seconds=59)
    assert client.get("/").status_code == 200
    clock.advance(minutes=14, seconds=59)  # activity above restarted the idle timer
    assert client.get("/").status_code == 200
    clock.advance(minutes=15)
    response = client.get("/audit/?actor=x")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/auth/login?next=/audit/?actor%3Dx")
    assert "expired=1" in response.headers["Location"]
    assert db_session.scalars(select(ConsoleSession).where(
        ConsoleSession.user_id.is_not(None))).all() == []


def test_an_expired_session_in_an_htmx_request_answers_with_hx_redirect(
        client, clock, sign_in):
    sign_in(client, "viewer")
    clock.advance(minutes=16)
    response = client.get("/", headers={"HX-Request": "true",
                                        "HX-Current-URL": "https://localhost/flows/"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"] == "/auth/login?next=/flows/&expired=1"
    assert response.get_data() == b""


def test_a_session_ends_after_twelve_hours_however_active(client, clock, sign_in):
    sign_in(client, "viewer")
    for _ in range(71):
        clock.advance(minutes=10)
        assert client.get("/").status_code == 200
    clock.advance(minutes=10)  # 12 h since sign-in
    assert client.get("/").status_code == 302


def test_idle_time_is_recorded_at_most_once_a_minute(client, clock, sign_in, db_session):
    sign_in(client, "viewer")
    first = db_session.scalar(select(ConsoleSession.last_seen_at))
    clock.advance(seconds=30)
    client.get("/")
    db_session.expire_all()
    assert db_session.scalar(select(ConsoleSession.last_seen_at)) == first
    clock.advance(seconds=30)
    client.get("/")
    db_session.expire_all()
    assert db_session.scalar(select(ConsoleSession.last_seen_at)) == clock.now


POLL = {"HX-Request": "true", POLL_HEADER: "true"}


def test_a_session_that_only_polls_still_ends_after_fifteen_idle_minutes(
        client, clock, sign_in, db_session):
    # PCI DSS 8.2.8: an overview left open in a tab refreshes itself every few seconds; those
    # background refreshes are not the operator, so they must not keep the session alive.
    sign_in(client, "viewer")
    signed_in_at = db_session.scalar(select(ConsoleSession.last_seen_at))
    for _ in range(14):
        clock.advance(minutes=1)
        assert client.get("/overview/panels", headers=POLL).status_code == 200  # served meanwhile
    db_session.expire_all()
    assert db_session.scalar(select(ConsoleSession.last_seen_at)) == signed_in_at
    assert db_session.scalar(select(User.last_seen_at).where(User.username == "viewer")) \
        <= signed_in_at
    clock.advance(minutes=1)
    assert client.get("/overview/panels", headers=POLL).status_code == 401
    assert client.get("/").status_code == 302  # signed out


def test_a_poll_that_changes_the_session_saves_it_without_counting_as_activity(
        app, client, clock, sign_in, db_session):
    sign_in(client, "viewer")
    signed_in_at = db_session.scalar(select(ConsoleSession.last_seen_at))
    probe = Blueprint("remember", __name__)

    @probe.get("/probe/remember")
    @require(Permission.VIEW_PANELS)
    def remember():
        session["remembered"] = "deliveries"
        return "ok"

    app.register_blueprint(probe)
    clock.advance(minutes=2)
    assert client.get("/probe/remember", headers=POLL).text == "ok"
    db_session.expire_all()
    row = db_session.scalar(select(ConsoleSession).where(ConsoleSession.user_id.is_not(None)))
    assert row.last_seen_at == signed_in_at
    assert "remembered" in row.data


def test_an_operator_request_after_polls_restarts_the_idle_timer(client, clock, sign_in):
    sign_in(client, "viewer")
    clock.advance(minutes=10)
    client.get("/overview/panels", headers=POLL)
    assert client.get("/").status_code == 200  # the operator looked: activity
    clock.advance(minutes=14)
    assert client.get("/overview/panels", headers=POLL).status_code == 200


def test_an_unknown_cookie_is_cleared(client):
    client.set_cookie(COOKIE_NAME, "not-a-session", domain="localhost", secure=True)
    header = _set_cookie_header(client.get("/auth/login"))
    # The login page creates a new anonymous session in place of the unknown one.
    assert not header.startswith(f"{COOKIE_NAME}=not-a-session")
    client.set_cookie(COOKIE_NAME, "not-a-session", domain="localhost", secure=True)
    response = client.get("/no-such-page", headers={"Accept": "application/json"})
    assert any(h.startswith(f"{COOKIE_NAME}=;") for h in response.headers.getlist("Set-Cookie"))


def test_health_probes_and_the_webhook_ingress_never_get_a_session(client, db_session):
    assert not client.get("/healthz").headers.getlist("Set-Cookie")
    response = client.post("/webhooks/finci", data=b"{}",
                           headers={"Content-Type": "application/json"})
    assert not response.headers.getlist("Set-Cookie")
    assert db_session.scalars(select(ConsoleSession)).all() == []


def test_session_data_survives_between_requests(client):
    token = anonymous_csrf(client)
    assert anonymous_csrf(client) == token


def _cookie_deleted(response) -> bool:
    return any(h.startswith(f"{COOKIE_NAME}=;") and "Expires=Thu, 01 Jan 1970" in h
               for h in response.headers.getlist("Set-Cookie"))


def test_sign_out_clears_the_cookie_in_the_browser_too(client, sign_in, db_session):
    sign_in(client, "viewer")
    response = client.post("/auth/logout", data={"csrf_token": client.csrf_token})
    assert response.status_code == 303
    assert _cookie_deleted(response)
    assert db_session.scalars(select(ConsoleSession)).all() == []


def test_unreadable_session_data_starts_empty_and_keeps_the_sign_in(client, sign_in,
                                                                    db_session, caplog):
    sign_in(client, "viewer")
    db_session.execute(update(ConsoleSession).values(data="{not json"))
    db_session.commit()
    page = client.get("/")
    assert page.status_code == 200
    assert "unreadable session data; starting empty" in caplog.messages
    # The old CSRF token went with the data; the page carries a fresh one, now stored.
    fresh = csrf_from(page.get_data(as_text=True))
    assert fresh != client.csrf_token
    db_session.expire_all()
    assert fresh in db_session.scalar(select(ConsoleSession.data))


def _store_down(*_args, **_kwargs):
    raise OperationalError("SELECT", {}, ConnectionError("connection refused"))


def test_without_the_session_store_pages_ask_to_sign_in_and_the_cookie_is_kept(
        client, sign_in, test_database, monkeypatch, caplog):
    sign_in(client, "viewer")
    monkeypatch.setattr(test_database, "transaction", contextmanager(_store_down))
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/auth/login")
    assert not response.headers.getlist("Set-Cookie")
    assert "session store unavailable" in caplog.messages
    monkeypatch.undo()
    assert client.get("/").status_code == 200  # back once the store is


def test_a_session_that_cannot_be_saved_is_not_sent(client, test_database, monkeypatch,
                                                     caplog):
    monkeypatch.setattr(test_database, "transaction", contextmanager(_store_down))
    response = client.get("/auth/login")  # creates an anonymous session (a CSRF token)
    assert response.status_code == 200
    assert not response.headers.getlist("Set-Cookie")
    assert "session store unavailable; session not saved" in caplog.messages


def test_a_session_ended_during_a_request_is_not_resurrected_by_it(app, client, sign_in,
                                                                   db_session):
    probe = Blueprint("probe", __name__)

    @probe.get("/probe/ended-elsewhere")
    @require(Permission.VIEW_PANELS)
    def ended_elsewhere():
        # An admin disables this user (or they sign out in another tab) mid-request.
        with app.extensions["database"].transaction() as db:
            end_sessions_of(db, client.user_id)
        session["last_panel"] = "deliveries"  # the request still writes to its session
        return "ok"

    app.register_blueprint(probe)
    sign_in(client, "viewer")
    response = client.get("/probe/ended-elsewhere")
    assert response.text == "ok"
    assert _cookie_deleted(response)
    db_session.expire_all()
    assert db_session.scalars(select(ConsoleSession)).all() == []
    assert client.get("/").status_code == 302
