"""Credentials and keys page (admins, MANAGE_KEYS): the status report and the inventory (with
its actions in ``inventory_routes``); viewing it is audited."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template

from console import navigation
from console.auth.sessions import now
from console.four_eyes import same_person
from console.htmx import htmx
from console.keys import approvals, inventory_view
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
    from console.secrets.factory import app_store

    app_store(state.app)  # a misconfigured store stops the start with its ConfigError


def render_status(error: str | None = None) -> str:
    settings = current_app.extensions["settings"]
    session, at = request_session(), now()
    report = view_key_status(session, settings, actor=current_actor(), at=at,
                             tls=TlsFiles.from_env())
    context = {"report": report, "badges": BADGES, "Status": Status}
    if htmx and htmx.target == "key-status" and error is None:
        return render_template("keys/_partials/_report.html", **context)
    found = inventory_view.rows(session, settings.environment.value, at)
    return render_template(
        "keys/status.html", **context, inventory=found, error=error,
        requests=approvals.pending(session, settings.environment.value, at),
        four_eyes=settings.secrets.require_second_approver,
        approval_minutes=settings.secrets.approval_minutes, me=current_actor().id,
        same_person=same_person,
        calendar=inventory_view.calendar(found, at.date()), kind_labels=inventory_view.LABELS,
        status_badges=inventory_view.BADGES, store_kind=_store_kind(),
        overlap_hours=settings.secrets.webhook_overlap_hours)


def _store_kind() -> str | None:
    from console.secrets.factory import app_store

    store = app_store(current_app)
    return store.kind if store is not None else None


@bp.get("/")
@require(Permission.MANAGE_KEYS)
def status():
    return render_status()


from console.keys import inventory_routes  # noqa: E402,F401 - registers the inventory actions
