"""Card-data key pairs page (MANAGE_KEYS): list, download a public key, and the key actions.

Every action needs a fresh sign-in (step-up) and a CSRF token, and is audited by the service;
with KEY_ACTIONS_REQUIRE_SECOND_APPROVER it is filed as a request a second admin decides on
the keys page (console.keys.approvals).
The private key never leaves the secret store: nothing here can show it.
"""

from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    url_for,
)

from console import navigation
from console.auth.step_up import fresh_login_required
from console.finci import contract
from console.keys import approvals
from console.keys import card_data_keys as keys
from console.keys.approvals import KeyAction, KeyActionRefused, KeyContext
from console.keys.inventory_routes import finish
from console.secrets.store import SecretStoreError
from console.security.permissions import Permission, require
from console.unit_of_work import request_session
from console.web_actor import current_actor

bp = Blueprint("card_data_keys", __name__, url_prefix="/keys/card-data")

BADGES = {"pending": "warning", "active": "ok", "retiring": "warning", "retired": "muted",
          "revoked": "error"}


@bp.record_once
def _on_register(state):
    navigation.register(state.app, "Card-data keys", "card_data_keys.index",
                        Permission.MANAGE_KEYS, 93)


def _environment() -> str:
    return current_app.extensions["settings"].environment.value


def _page(error: str | None = None, status: int = 200, created: str | None = None):
    context = {"keys": keys.list_keys(request_session(), _environment()), "badges": BADGES,
               "error": error, "created": created, "reason_min": keys.REASON_MIN,
               "environment": _environment(),
               "four_eyes": current_app.extensions["settings"].secrets.require_second_approver}
    return render_template("keys/card_data.html", **context), status


@bp.get("/")
@require(Permission.MANAGE_KEYS)
def index():
    return _page(created=request.args.get("created", "")[:64] or None)


@bp.get("/<kid>/public.pem")
@require(Permission.MANAGE_KEYS)
def public_key(kid: str):
    try:
        key = keys.get_key(request_session(), kid, _environment())
    except keys.UnknownKey:
        abort(404)
    response = Response(key.public_pem, mimetype="application/x-pem-file")
    response.headers["Content-Disposition"] = f'attachment; filename="{key.kid}.pem"'
    response.headers["X-Key-Id"] = key.kid
    return response


def _act(action: KeyAction, **params):
    try:
        if "kid" in params:  # unknown: 404, store or not
            keys.get_key(request_session(), params["kid"], _environment())
        done = approvals.perform(request_session(), current_actor(), KeyContext.of(current_app),
                                 action, reason=request.form.get("reason", ""), **params)
    except keys.UnknownKey:
        abort(404)
    except KeyActionRefused as error:
        return _page(str(error), 422)
    except (keys.CardDataKeyError, SecretStoreError) as error:
        return _page(str(error), 409 if isinstance(error, keys.CardDataKeyError) else 503)
    if done.request is not None:
        return finish(done)
    key = done.result
    return redirect(url_for("card_data_keys.index", created=key.kid) + f"#key-{key.kid}", 303)


@bp.post("/generate")
@require(Permission.MANAGE_KEYS)
@fresh_login_required
def generate():
    return _act(KeyAction.CARD_DATA_GENERATE, bits=contract.CARD_DATA_KEY_MIN_BITS)


@bp.post("/<kid>/activate")
@require(Permission.MANAGE_KEYS)
@fresh_login_required
def activate(kid: str):
    return _act(KeyAction.CARD_DATA_ACTIVATE, kid=kid)


@bp.post("/<kid>/retire")
@require(Permission.MANAGE_KEYS)
@fresh_login_required
def retire(kid: str):
    return _act(KeyAction.CARD_DATA_RETIRE, kid=kid)


@bp.post("/<kid>/revoke")
@require(Permission.MANAGE_KEYS)
@fresh_login_required
def revoke(kid: str):
    return _act(KeyAction.CARD_DATA_REVOKE, kid=kid)
