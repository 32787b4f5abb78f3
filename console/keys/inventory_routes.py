"""Inventory actions on the keys page: add a webhook secret, activate, retire (now or after an
overlap), revoke. MANAGE_KEYS, step-up (``SensitiveAction.KEYS``), a written reason, CSRF (app
wide) and an audit row for every one; a refusal answers 422 with the reason on the page."""

from __future__ import annotations

import datetime as dt
import re

from flask import current_app, flash, redirect, request, url_for

from console.auth.sessions import now
from console.auth.settings import SensitiveAction
from console.auth.step_up import step_up_required
from console.keys import inventory
from console.keys.routes import bp, render_status
from console.keys.webhook_secrets import add_webhook_secret, secret_set
from console.secrets.factory import app_store
from console.security.permissions import Permission, require
from console.unit_of_work import keep_on_error, request_session
from console.web_actor import current_actor

ACTIONS = {"activate": inventory.activate, "retire": inventory.retire,
           "revoke": inventory.revoke, "schedule_retire": inventory.schedule_retire}
MAX_OVERLAP_HOURS = 24 * 30
_HOURS = re.compile(r"[0-9]{1,4}")


def _environment() -> str:
    return current_app.extensions["settings"].environment.value


def _refused(message: str, status: int = 422):
    # Nothing of the refused action stays; the page view's own audit row does.
    request_session().rollback()
    keep_on_error()
    return render_status(error=message), status


def _done(message: str):
    found = current_app.extensions.get("keys.webhook_secrets")
    if found is not None:
        found.invalidate()
    flash(message, "success")
    return redirect(url_for("keys.status") + "#inventory", 303)


def _hours(default: int) -> int:
    raw = (request.form.get("hours") or "").strip()
    if not raw:
        return default
    # [0-9], not str.isdigit(): that accepts "²", which int() then refuses.
    if not _HOURS.fullmatch(raw) or not 1 <= int(raw) <= MAX_OVERLAP_HOURS:
        raise inventory.InventoryError(f"hours must be a whole number from 1 to "
                                       f"{MAX_OVERLAP_HOURS}")
    return int(raw)


@bp.post("/credentials/<int:credential_id>/<action>")
@require(Permission.MANAGE_KEYS)
@step_up_required(SensitiveAction.KEYS)
def credential_action(credential_id: int, action: str):
    if action not in ACTIONS:
        return _refused("unknown action", 404)
    session = request_session()
    at = now()
    try:
        credential = inventory.get(session, credential_id, _environment())
        extra = {}
        if action == "schedule_retire":
            extra["retire_after"] = at + dt.timedelta(hours=_hours(24))
        ACTIONS[action](session, current_actor(), credential, environment=_environment(),
                        at=at, reason=request.form.get("reason", ""), **extra)
    except inventory.CredentialNotFound:
        return _refused("no such credential", 404)
    except inventory.InventoryError as refused:
        return _refused(str(refused))
    return _done(f"{credential.kind} {credential.fingerprint} is now {credential.status}")


@bp.post("/webhook-secrets")
@require(Permission.MANAGE_KEYS)
@step_up_required(SensitiveAction.KEYS)
def add_webhook():
    settings = current_app.extensions["settings"]
    session = request_session()
    try:
        overlap = dt.timedelta(hours=_hours(settings.secrets.webhook_overlap_hours))
        credential = add_webhook_secret(
            session, app_store(current_app), current_actor(),
            value=request.form.get("value") or None,
            stored_as=(request.form.get("stored_as") or "").strip() or None,
            environment=_environment(),
            configured=settings.ingress.secrets, at=now(),
            reason=request.form.get("reason", ""), overlap=overlap)
    except inventory.InventoryError as refused:
        return _refused(str(refused))
    secret_set(current_app)
    return _done(f"webhook secret {credential.fingerprint} added; the previous ones are "
                 f"accepted for {overlap} more")


@bp.post("/inventory/record-configured")
@require(Permission.MANAGE_KEYS)
@step_up_required(SensitiveAction.KEYS)
def record_configured_view():
    from console.keys.configured import record_configured
    from console.keys.services import TlsFiles

    added = record_configured(request_session(), current_actor(),
                              current_app.extensions["settings"], TlsFiles.from_env(), at=now())
    return _done(f"recorded {len(added)} configured credential(s)" if added
                 else "nothing new to record")
