"""The users page: who has signed in, roles, last seen; disabling ends sessions at once."""

from __future__ import annotations

import json

from sqlalchemy import select

from console.audit.models import AuditEvent
from console.auth.models import ConsoleSession, User


def _htmx(client):
    return {"X-CSRF-Token": client.csrf_token, "HX-Request": "true",
            "HX-Current-URL": "https://localhost/users/"}


def test_admins_see_everyone_who_has_signed_in(as_admin, as_operator, as_compliance):
    page = as_admin.get("/users/").get_data(as_text=True)
    assert page.count('data-testid="user-row"') == 3
    for name, roles in [("operator", "operator"), ("compliance", "compliance"),
                        ("admin", "admin")]:
        assert f"<code>{name}</code>" in page
        assert f"<td>{roles}" in page
    assert "never" not in page  # every one of them has a last sign-in


def test_disabling_a_user_ends_their_sessions_at_once(as_admin, as_operator, db_session):
    assert as_operator.get("/").status_code == 200
    response = as_admin.post(f"/users/{as_operator.user_id}/disable", headers=_htmx(as_admin))
    assert response.status_code == 200
    assert response.get_data(as_text=True).lstrip().startswith("<tr id=")
    assert "disabled</span>" in response.get_data(as_text=True)
    assert as_operator.get("/").status_code == 302
    assert db_session.scalars(select(ConsoleSession).where(
        ConsoleSession.user_id == as_operator.user_id)).all() == []
    event = db_session.scalars(select(AuditEvent).where(
        AuditEvent.action == "auth.user.disable")).one()
    assert (event.actor_id, event.target_id) == ("admin", "operator")
    assert json.loads(event.details)["sessions_ended"] == 1


def test_a_disabled_user_can_be_enabled_again(as_admin, as_operator, db_session):
    as_admin.post(f"/users/{as_operator.user_id}/disable", headers=_htmx(as_admin))
    response = as_admin.post(f"/users/{as_operator.user_id}/enable", headers=_htmx(as_admin))
    assert "active</span>" in response.get_data(as_text=True)
    assert db_session.get(User, as_operator.user_id).disabled_at is None
    assert db_session.scalars(select(AuditEvent.action).where(
        AuditEvent.action.startswith("auth.user.e"))).all() == ["auth.user.enable"]


def test_admins_cannot_disable_themselves(as_admin, db_session):
    response = as_admin.post(f"/users/{as_admin.user_id}/disable", headers=_htmx(as_admin))
    assert response.status_code == 200
    assert "cannot disable your own account" in response.get_data(as_text=True)
    assert db_session.get(User, as_admin.user_id).disabled_at is None


def test_without_htmx_the_form_posts_and_returns_to_the_list(as_admin, as_viewer):
    response = as_admin.post(f"/users/{as_viewer.user_id}/disable",
                             data={"csrf_token": as_admin.csrf_token})
    assert response.status_code == 303
    assert response.headers["Location"] == "/users/"


def test_an_unknown_user_is_not_found(as_admin):
    assert as_admin.post("/users/999999/disable", headers=_htmx(as_admin)).status_code == 404


def test_the_disable_button_uses_htmx_with_the_body_csrf_header(as_admin, as_viewer):
    page = as_admin.get("/users/").get_data(as_text=True)
    assert f'hx-post="/users/{as_viewer.user_id}/disable"' in page
    assert f'"X-CSRF-Token": "{as_admin.csrf_token}"' in page
