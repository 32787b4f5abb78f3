"""The users page (admins): who has signed in, their roles, when they were last seen; disabling
a user ends all their sessions at once."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for

from console import navigation
from console.auth import services
from console.auth.access import current_user_record
from console.auth.models import User
from console.auth.sessions import active_session_counts, now
from console.auth.settings import SensitiveAction
from console.auth.step_up import step_up_required
from console.htmx import htmx
from console.security.permissions import Permission, require
from console.unit_of_work import request_session
from console.web_actor import current_actor

bp = Blueprint("users", __name__, url_prefix="/users")


@bp.record_once
def _on_register(state):
    navigation.register(state.app, "Users", "users.index", Permission.MANAGE_USERS, 95)


def _row(user, *, error: str | None = None):
    sessions = active_session_counts(request_session(), at=now(),
                                     limits=current_app.extensions["session_limits"])
    return render_template("auth/_partials/_user_row.html", user=user,
                           sessions=sessions.get(user.id, 0), me=current_user_record(),
                           error=error)


@bp.get("/")
@require(Permission.MANAGE_USERS)
def index():
    db = request_session()
    users = services.list_users(db)
    sessions = active_session_counts(db, at=now(),
                                     limits=current_app.extensions["session_limits"])
    return render_template("auth/users.html", users=users, sessions=sessions,
                           me=current_user_record())


def _changed(user, error: str | None = None):
    if user is None:
        abort(404)
    if htmx:
        # 200 even for a refusal: htmx swaps only successful answers, and the row shows why.
        return _row(user, error=error)
    if error:
        flash(error, "error")
    return redirect(url_for("users.index"), 303)


@bp.post("/<int:user_id>/disable")
@require(Permission.MANAGE_USERS)
@step_up_required(SensitiveAction.USERS)
def disable(user_id: int):
    me = current_user_record()
    try:
        user = services.disable_user(request_session(), user_id, actor=current_actor(),
                                     acting_user_id=me.id if me else None, at=now())
    except services.UserAdminError as refused:
        return _changed(request_session().get(User, user_id), str(refused))
    return _changed(user)


@bp.post("/<int:user_id>/enable")
@require(Permission.MANAGE_USERS)
@step_up_required(SensitiveAction.USERS)
def enable(user_id: int):
    return _changed(services.enable_user(request_session(), user_id, actor=current_actor()))
