"""Card-data key pairs page (MANAGE_KEYS): list, download a public key, and the key actions.

Every action needs a fresh sign-in (step-up) and a CSRF token, and is audited by the service.
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
from console.keys import card_data_keys as keys
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
               "environment": _environment()}
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


def _act(action, kid: str | None = None):
    try:
        if kid is not None:
            keys.get_key(request_session(), kid, _environment())  # unknown: 404, store or not
        key = action()
    except keys.UnknownKey:
        abort(404)
    except (keys.CardDataKeyError, SecretStoreError) as error:
        return _page(str(error), 409 if isinstance(error, keys.CardDataKeyError) else 503)
    return redirect(url_for("card_data_keys.index", created=key.kid) + f"#key-{key.kid}", 303)


@bp.post("/generate")
@require(Permission.MANAGE_KEYS)
@fresh_login_required
def generate():
    return _act(lambda: keys.generate(request_session(), keys.configured_store(current_app),
                                      environment=_environment(), actor=current_actor()))


@bp.post("/<kid>/activate")
@require(Permission.MANAGE_KEYS)
@fresh_login_required
def activate(kid: str):
    return _act(lambda: keys.activate(request_session(), kid, environment=_environment(),
                                      actor=current_actor()), kid)


@bp.post("/<kid>/retire")
@require(Permission.MANAGE_KEYS)
@fresh_login_required
def retire(kid: str):
    return _act(lambda: keys.retire(request_session(), kid, environment=_environment(),
                                    actor=current_actor(),
                                    reason=request.form.get("reason", "")), kid)


@bp.post("/<kid>/revoke")
@require(Permission.MANAGE_KEYS)
@fresh_login_required
def revoke(kid: str):
    return _act(lambda: keys.revoke(request_session(), keys.configured_store(current_app), kid,
                                    environment=_environment(), actor=current_actor(),
                                    reason=request.form.get("reason", "")), kid)
