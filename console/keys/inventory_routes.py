"""Inventory actions on the keys page: add a webhook secret, activate, retire (now or after an
overlap), revoke, record the configured credentials; and the decisions on four-eyes requests.
MANAGE_KEYS, step-up (``SensitiveAction.KEYS``), a written reason, CSRF (app wide) and an audit
row for every one; a refusal answers 422 with the reason on the page. Each action goes through
``console.keys.approvals.perform``: at once, or as a request a second admin decides."""

from __future__ import annotations

import re

from flask import current_app, flash, redirect, request, url_for

from console.auth.sessions import now
from console.auth.settings import SensitiveAction
from console.auth.step_up import step_up_required
from console.keys import approvals, inventory
from console.keys.approvals import Decision, KeyAction, KeyActionRefused, KeyContext, Performed
from console.keys.routes import bp, render_status
from console.keys.webhook_secrets import secret_set
from console.secrets.store import SecretStoreError
from console.security.permissions import Permission, require
from console.unit_of_work import keep_on_error, request_session
from console.web_actor import current_actor

ACTIONS = {"activate": KeyAction.CREDENTIAL_ACTIVATE, "retire": KeyAction.CREDENTIAL_RETIRE,
           "revoke": KeyAction.CREDENTIAL_REVOKE,
           "schedule_retire": KeyAction.CREDENTIAL_SCHEDULE_RETIRE}
MAX_OVERLAP_HOURS = 24 * 30
_HOURS = re.compile(r"[0-9]{1,4}")
DONE = {Decision.APPROVE: "approved and carried out", Decision.REJECT: "rejected",
        Decision.CANCEL: "cancelled"}


def _refused(message: str, status: int = 422):
    # Nothing of the refused action stays; the page view's own audit row does.
    request_session().rollback()
    keep_on_error()
    return render_status(error=message), status


def _done(message: str, anchor: str = "inventory"):
    found = current_app.extensions.get("keys.webhook_secrets")
    if found is not None:
        found.invalidate()
    flash(message, "success")
    return redirect(url_for("keys.status") + f"#{anchor}", 303)


def finish(done: Performed, message: str | None = None):
    """Where an action ends: its outcome, or the request filed for a second person."""
    if done.request is not None:
        return _done(f"Request #{done.request.id} filed: another admin must approve it before "
                     f"{done.request.expires_at:%H:%M} UTC.", "requests")
    return _done(message or approvals.describe(done.result))


def _hours(default: int) -> int:
    raw = (request.form.get("hours") or "").strip()
    if not raw:
        return default
    # [0-9], not str.isdigit(): that accepts "²", which int() then refuses.
    if not _HOURS.fullmatch(raw) or not 1 <= int(raw) <= MAX_OVERLAP_HOURS:
        raise inventory.InventoryError(f"hours must be a whole number from 1 to "
                                       f"{MAX_OVERLAP_HOURS}")
    return int(raw)


def _perform(action: KeyAction, **params) -> Performed:
    return approvals.perform(request_session(), current_actor(), KeyContext.of(current_app),
                             action, reason=request.form.get("reason", ""), at=now(), **params)


@bp.post("/credentials/<int:credential_id>/<action>")
@require(Permission.MANAGE_KEYS)
@step_up_required(SensitiveAction.KEYS)
def credential_action(credential_id: int, action: str):
    if action not in ACTIONS:
        return _refused("unknown action", 404)
    try:
        params = {"hours": _hours(24)} if action == "schedule_retire" else {}
        done = _perform(ACTIONS[action], credential_id=credential_id, **params)
    except inventory.CredentialNotFound:
        return _refused("no such credential", 404)
    except (inventory.InventoryError, KeyActionRefused) as refused:
        return _refused(str(refused))
    return finish(done)


@bp.post("/webhook-secrets")
@require(Permission.MANAGE_KEYS)
@step_up_required(SensitiveAction.KEYS)
def add_webhook():
    settings = current_app.extensions["settings"]
    try:
        hours = _hours(settings.secrets.webhook_overlap_hours)
        done = _perform(KeyAction.WEBHOOK_SECRET_ADD, value=request.form.get("value") or None,
                        stored_as=(request.form.get("stored_as") or "").strip() or None,
                        overlap_hours=hours)
    except (inventory.InventoryError, KeyActionRefused) as refused:
        return _refused(str(refused))
    if done.request is not None:
        return finish(done)
    secret_set(current_app)
    return finish(done, f"webhook secret {done.result.fingerprint} added; the previous ones are "
                        f"accepted for {hours} h more")


@bp.post("/inventory/record-configured")
@require(Permission.MANAGE_KEYS)
@step_up_required(SensitiveAction.KEYS)
def record_configured_view():
    try:
        done = _perform(KeyAction.RECORD_CONFIGURED)
    except (inventory.InventoryError, KeyActionRefused) as refused:
        return _refused(str(refused))
    return finish(done)


@bp.post("/requests/<int:request_id>/<decision>")
@require(Permission.MANAGE_KEYS)
@step_up_required(SensitiveAction.KEYS)
def decide(request_id: int, decision: str):
    try:
        chosen = Decision(decision)
    except ValueError:
        return _refused("unknown decision", 404)
    try:
        approvals.decide(request_session(), current_actor(), KeyContext.of(current_app),
                         request_id, chosen, now=now())
    except (KeyActionRefused, SecretStoreError) as refused:
        return _refused(str(refused))
    return _done(f"Request #{request_id} {DONE[chosen]}.", "requests")
