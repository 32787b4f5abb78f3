"""Credentials and keys page (admins, MANAGE_KEYS): read-only status; viewing it is audited."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template

from console import navigation
from console.auth.sessions import now
from console.htmx import htmx
from console.keys.services import Status, TlsFiles, view_key_status
from console.security.permissions import Permission, require
from console.unit_of_work import request_session
from console.web_actor import current_actor

bp = Blueprint("keys", __name__, url_prefix="/keys")

BADGES = {Status.OK: "ok", Status.ATTENTION: "warning", Status.PROBLEM: "error"}


@bp.record_once
def _on_register(state):
    navigation.register(state.app, "Credentials and keys", "keys.status", Permission.MANAGE_KEYS,
                        92)


@bp.get("/")
@require(Permission.MANAGE_KEYS)
def status():
    report = view_key_status(request_session(), current_app.extensions["settings"],
                             actor=current_actor(), at=now(), tls=TlsFiles.from_env())
    context = {"report": report, "badges": BADGES, "Status": Status}
    if htmx and htmx.target == "key-status":
        return render_template("keys/_partials/_report.html", **context)
    return render_template("keys/status.html", **context)
