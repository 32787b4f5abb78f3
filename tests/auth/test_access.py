"""The permission enforcer, checker and actor resolver installed by console.auth."""

from __future__ import annotations

import json

import pytest
from flask import Blueprint
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError

from console.audit import AuditAction, record
from console.audit.models import AuditEvent
from console.auth.access import safe_next
from console.auth.models import User
from console.security.permissions import Permission, require
from console.web_actor import current_actor


def _denials(db_session) -> list[dict]:
    rows = db_session.scalars(select(AuditEvent).where(AuditEvent.action == "auth.access.deny"))
    return [{"actor": r.actor_id, "outcome": r.outcome, **json.loads(r.details)} for r in rows]


def test_an_anonymous_page_load_is_sent_to_sign_in_and_back(client):
    response = client.get("/audit/?outcome=denied")
    assert response.status_code == 302
    assert response.headers["Location"] == "/auth/login?next=/audit/?outcome%3Ddenied"


def test_an_anonymous_htmx_request_gets_hx_redirect_not_a_login_page(client):
    response = client.get("/audit/verify", headers={
        "HX-Request": "true", "HX-Current-URL": "https://localhost/audit/"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"] == "/auth/login?next=/audit/"
    assert response.get_data() == b""


def test_an_htmx_redirect_never_points_at_another_site(client):
    response = client.get("/", headers={"HX-Request": "true",
                                        "HX-Current-URL": "https://evil.example/x"})
    assert response.headers["HX-Redirect"] == "/auth/login?next=/"


def test_an_anonymous_json_request_gets_a_json_401(client):
    response = client.get("/", headers={"Accept": "application/json"})
    assert response.status_code == 401
    assert response.json == {"status": "error", "error": "unauthorized"}


def test_a_denial_is_audited_and_survives_the_error_rollback(as_viewer, db_session):
    response = as_viewer.get("/audit/")
    assert response.status_code == 403
    assert _denials(db_session) == [{"actor": "viewer", "outcome": "denied",
                                     "permission": "view_audit", "status": 403,
                                     "method": "GET", "path": "/audit/"}]


def test_an_anonymous_api_call_is_a_denial_counted_for_the_audit_log(client, db_session):
    from console.auth.models import AnonymousDenial

    client.get("/users/", headers={"Accept": "application/json"})
    assert _denials(db_session) == []  # audited in batches: tests/auth/test_denials.py
    counter = db_session.scalars(select(AnonymousDenial)).one()
    assert (counter.status, counter.method, counter.permission, counter.count) == (
        401, "GET", "manage_users", 1)


def test_anonymous_page_loads_are_sent_to_sign_in_without_an_audit_row_each(client,
                                                                             db_session):
    for _ in range(400):
        assert client.get("/").status_code == 302
    client.get("/audit/verify", headers={"HX-Request": "true"})
    assert _denials(db_session) == []


def test_a_signed_in_users_refusal_is_still_audited_on_a_page_load(as_viewer, db_session):
    assert as_viewer.get("/users/").status_code == 403
    assert [d["status"] for d in _denials(db_session)] == [403]


def test_navigation_shows_only_what_the_role_may_open(as_viewer, as_admin, as_compliance):
    def nav(client):
        page = client.get("/").get_data(as_text=True)
        return page.split('aria-label="Main">')[1].split("</nav>")[0]

    assert "Users" not in nav(as_viewer) and "Audit log" not in nav(as_viewer)
    assert "Users" in nav(as_admin)
    assert "Audit log" in nav(as_compliance) and "Users" not in nav(as_compliance)


def test_audit_rows_name_the_signed_in_user(app, as_operator, db_session):
    probe = Blueprint("probe", __name__)

    @probe.post("/probe")
    @require(Permission.REPLAY)
    def act():
        from console.unit_of_work import request_session

        record(request_session(), actor=current_actor(), action=AuditAction.AUDIT_LOG_VIEW)
        return "ok"

    app.register_blueprint(probe)
    assert as_operator.post("/probe", headers={"X-CSRF-Token": as_operator.csrf_token}).text \
        == "ok"
    row = db_session.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc())).first()
    assert (row.actor_type, row.actor_id) == ("user", "operator")


def test_a_disabled_user_is_anonymous_even_if_a_session_row_survived(as_admin, db_session):
    db_session.execute(update(User).values(disabled_at=User.created_at))
    db_session.commit()
    assert as_admin.get("/users/").status_code == 302


def test_card_data_reveal_belongs_to_no_role(app):
    from console.security.permissions import ROLE_PERMISSIONS

    assert all(Permission.REVEAL_CARD_DATA not in granted for granted in
               ROLE_PERMISSIONS.values())


@pytest.mark.parametrize("value", ["//evil.example/x", "https://evil.example", "/\\evil",
                                   "evil", "", None,
                                   # URL parsers (and browsers) drop tabs and newlines: "//".
                                   "/\t/evil.example/x", "/\n/evil.example", "/\r/evil.example",
                                   # A Location header cannot carry CR/LF (a 500 on sign-in).
                                   "/audit/\r\nSet-Cookie: x=1", "/a\x00", "/a\tb", "/a\x7f",
                                   "/a\x85"])
def test_next_never_leaves_the_console(value):
    assert safe_next(value) == "/"


def test_a_crlf_in_next_does_not_break_sign_in(as_viewer):
    # Signed in, /auth/login redirects to next at once: CR/LF in a Location header was a 500.
    response = as_viewer.get("/auth/login",
                             query_string={"next": "/audit/\r\nSet-Cookie: x=1"})
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


def test_next_keeps_a_local_path_and_query():
    assert safe_next("/audit/?actor=x") == "/audit/?actor=x"


def test_a_route_without_a_declaration_is_refused_to_everyone(app, as_admin):
    bare = Blueprint("bare", __name__)

    @bare.get("/bare")
    def undeclared():
        return "open door"

    app.register_blueprint(bare)
    assert as_admin.get("/bare").status_code == 403


def test_a_database_error_while_loading_the_user_signs_nobody_in(app, as_admin, monkeypatch):
    from console.auth import access

    real_session = access.request_session

    class UserLookupFails:
        def __init__(self, session):
            self._session = session

        def get(self, entity, *args, **kwargs):
            if entity is User:
                raise OperationalError("SELECT", {}, ConnectionError("connection lost"))
            return self._session.get(entity, *args, **kwargs)

        def __getattr__(self, name):
            return getattr(self._session, name)

    monkeypatch.setattr(access, "request_session", lambda: UserLookupFails(real_session()))
    response = as_admin.get("/users/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/auth/login")
    monkeypatch.undo()
    assert as_admin.get("/users/").status_code == 200  # the session itself was never lost


def test_a_live_console_without_oidc_says_nobody_can_sign_in(settings, test_database, caplog):
    from console import create_app
    from console.settings import Mode

    create_app(settings, database=test_database)
    assert not [m for m in caplog.messages if "OIDC is not configured" in m]
    create_app(settings.replace(mode=Mode.LIVE), database=test_database)
    assert [r.levelname for r in caplog.records if "OIDC is not configured" in r.getMessage()] \
        == ["ERROR"]
