"""Sign-in pages: SSO login and callback, sign-out, step-up and break-glass.

All are public (a person who is not signed in must reach them); each checks what it needs.
Starting a login is a POST (CSRF-protected): no GET changes state, and a third-party page cannot
start a login in the user's browser.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time

from flask import (
    Blueprint,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import logout_user

from console.audit import AuditAction, Outcome, record
from console.auth import break_glass, services
from console.auth.access import (
    current_user_record,
    is_break_glass_session,
    safe_next,
    server_session,
)
from console.auth.oidc import (
    MAX_PENDING_LOGINS,
    PENDING_LOGIN_TTL_S,
    OidcClient,
    OidcError,
    PendingLogin,
    claim_path,
    groups_from_claim,
)
from console.auth.services import Identity, LoginRefused
from console.auth.sessions import now
from console.keys import usage as key_usage
from console.keys.inventory import Kind
from console.security import csrf
from console.security.headers import allow_form_action
from console.security.permissions import public
from console.unit_of_work import keep_on_error, request_session
from console.web_actor import current_actor

log = logging.getLogger(__name__)

bp = Blueprint("auth", __name__, url_prefix="/auth")

PENDING_KEY = "_oidc_pending"
ID_TOKEN_KEY = "_oidc_id_token"  # noqa: S105 - a session key name, not a secret
_FIELD_LIMIT = 256


def _settings():
    return current_app.extensions["settings"]


def _client() -> OidcClient | None:
    return current_app.extensions.get("oidc_client")


def _limits():
    return current_app.extensions["session_limits"]


def _callback_url() -> str:
    return url_for("auth.callback", _external=True)


def _allow_idp_forms(client: OidcClient | None) -> None:
    if client is None:
        return
    with contextlib.suppress(OidcError):
        client.metadata()  # learn the authorization endpoint's origin for CSP form-action
    for origin in client.origins():
        allow_form_action(origin)


def _field(name: str) -> str:
    return (request.form.get(name) or "")[:_FIELD_LIMIT]


# --- SSO -----------------------------------------------------------------------------------

def _login_page(*, status: int = 200, error: str | None = None, next_url: str = "/"):
    client = _client()
    _allow_idp_forms(client)
    return render_template(
        "auth/login.html", next_url=next_url, sso_configured=client is not None,
        break_glass_enabled=_settings().auth.break_glass_enabled, error=error,
        expired=request.args.get("expired") == "1"), status


@bp.get("/login")
@public
def login():
    next_url = safe_next(request.args.get("next"))
    if current_user_record() is not None:
        return redirect(next_url)
    return _login_page(next_url=next_url)


def _to_identity_provider(client: OidcClient, *, next_url: str, step_up: bool):
    try:
        url, pending = client.begin(_callback_url(), next_url=next_url, step_up=step_up,
                                    started_at=now().timestamp())
    except OidcError as error:
        log.warning("cannot start sign-in", extra={"reason": error.reason})
        return _login_page(status=503, next_url=next_url,
                           error="The identity provider is unreachable. Try again shortly.")
    # Several tabs may be signing in at once; keep the few newest.
    remembered = [p for p in session.get(PENDING_KEY, [])
                  if time.time() - p.get("started_at", 0) < PENDING_LOGIN_TTL_S]
    session[PENDING_KEY] = [*remembered[-(MAX_PENDING_LOGINS - 1):], pending.as_dict()]
    return redirect(url, 303)


@bp.post("/login")
@public
def start_login():
    client = _client()
    if client is None:
        abort(404)
    return _to_identity_provider(client, next_url=safe_next(request.form.get("next")),
                                 step_up=False)


def _take_pending(state: str) -> PendingLogin | None:
    remembered = session.get(PENDING_KEY, [])
    match = next((p for p in remembered if state and p.get("state") == state), None)
    if match is None:
        return None
    session[PENDING_KEY] = [p for p in remembered if p is not match]  # one use only
    return PendingLogin.from_dict(match)


def _identity(claims: dict) -> Identity:
    auth = _settings().auth
    groups = groups_from_claim(claim_path(claims, auth.role_claim))
    username = next((claims[k] for k in ("preferred_username", "email", "sub")
                     if isinstance(claims.get(k), str) and claims[k]), claims["sub"])
    auth_time = claims.get("auth_time")
    return Identity(
        issuer=claims["iss"], subject=claims["sub"], username=username,
        display_name=claims["name"] if isinstance(claims.get("name"), str) else username,
        email=claims["email"] if isinstance(claims.get("email"), str) else None,
        roles=auth.roles_for_groups(groups),
        reveal_card_data=bool(auth.reveal_group and auth.reveal_group in groups),
        auth_time=dt.datetime.fromtimestamp(auth_time, dt.UTC) if auth_time else None,
    )


def _sign_in_failed(reason: str, *, next_url: str = "/"):
    record(request_session(), actor=current_actor(), action=AuditAction.AUTH_SESSION_LOGIN,
           outcome=Outcome.FAILURE, details={"reason": reason[:80]})
    keep_on_error()
    return _login_page(status=400, next_url=next_url,
                       error="Sign-in did not complete. Please start again.")


@bp.get("/callback")
@public
def callback():
    client = _client()
    if client is None:
        abort(404)
    pending = _take_pending(request.args.get("state", ""))
    if pending is None:
        return _sign_in_failed("state_mismatch")
    if now().timestamp() - pending.started_at > PENDING_LOGIN_TTL_S:
        return _sign_in_failed("login_too_slow", next_url=pending.next_url)
    if "error" in request.args:
        return _sign_in_failed(f"idp_{request.args['error'][:40]}", next_url=pending.next_url)
    # RFC 9207: the response names its issuer; a different one is an IdP mix-up attack.
    if request.args.get("iss", client.settings.issuer) != client.settings.issuer:
        return _sign_in_failed("issuer_mismatch", next_url=pending.next_url)
    code = request.args.get("code", "")
    if not code:
        return _sign_in_failed("code_missing", next_url=pending.next_url)
    try:
        tokens = client.redeem(code, pending, _callback_url())
    except OidcError as error:
        return _sign_in_failed(error.reason, next_url=pending.next_url)
    # The identity provider redeemed the code with our client secret: that secret is in use.
    key_usage.used_after_response(Kind.SSO_CLIENT_SECRET)
    try:
        claims = client.validate_id_token(
            tokens["id_token"], nonce=pending.nonce, now=now(),
            max_auth_age_s=_settings().auth.step_up_max_age_seconds if pending.step_up else None)
    except OidcError as error:
        return _sign_in_failed(error.reason, next_url=pending.next_url)

    current = server_session()
    signed_in = current_user_record()
    step_up_of = signed_in.id if pending.step_up and signed_in is not None else None
    try:
        _user, started = services.login(
            request_session(), _identity(claims), origin=current_actor(), at=now(),
            limits=_limits(), replaces=current.record_id if current else None,
            step_up_of=step_up_of)
    except LoginRefused as refused:
        keep_on_error()
        return render_template("auth/refused.html", message=refused.message), 403
    if current is not None:
        current.adopt(started)
    session[ID_TOKEN_KEY] = tokens["id_token"]  # the id_token_hint for RP-initiated logout
    csrf.rotate()
    return redirect(pending.next_url)


# --- sign-out ------------------------------------------------------------------------------

@bp.post("/logout")
@public
def logout():
    current = server_session()
    user = current_user_record()
    was_break_glass = is_break_glass_session()
    id_token = session.get(ID_TOKEN_KEY)
    services.logout(request_session(), user=user,
                    session_id=current.record_id if current else None,
                    origin=current_actor(), break_glass=was_break_glass)
    logout_user()
    if current is not None:
        current.end()
    client = _client()
    target = None
    if client is not None and user is not None and not was_break_glass:
        target = client.end_session_url(
            id_token_hint=id_token,
            post_logout_redirect_uri=url_for("auth.signed_out", _external=True))
    return redirect(target or url_for("auth.signed_out"), 303)


@bp.get("/signed-out")
@public
def signed_out():
    if current_user_record() is not None:
        return redirect(url_for("home.overview"))
    return render_template("auth/signed_out.html")


# --- step-up -------------------------------------------------------------------------------

@bp.get("/step-up")
@public
def step_up():
    next_url = safe_next(request.args.get("next"))
    if current_user_record() is None:
        return redirect(url_for("auth.login", next=next_url))
    if is_break_glass_session():
        return redirect(url_for("auth.break_glass_login", next=next_url, step_up="1"))
    client = _client()
    _allow_idp_forms(client)
    return render_template("auth/step_up.html", next_url=next_url,
                           sso_configured=client is not None)


@bp.post("/step-up")
@public
def start_step_up():
    next_url = safe_next(request.form.get("next"))
    client = _client()
    if current_user_record() is None:
        return redirect(url_for("auth.login", next=next_url), 303)
    if client is None:
        abort(404)
    return _to_identity_provider(client, next_url=next_url, step_up=True)


# --- break-glass ---------------------------------------------------------------------------

@bp.route("/break-glass", methods=["GET", "POST"])
@public
def break_glass_login():
    settings = _settings()
    if not settings.auth.break_glass_enabled:
        abort(404)
    next_url = safe_next(request.values.get("next"))
    step_up = request.values.get("step_up") == "1"
    if request.method == "GET":
        return render_template("auth/break_glass.html", next_url=next_url, step_up=step_up,
                               error=None)
    current = server_session()
    try:
        _user, started = break_glass.sign_in(
            request_session(), _field("username").strip().lower(), _field("password"),
            _field("code"), origin=current_actor(), at=now(), limits=_limits(),
            secret_key=settings.secret_key, replaces=current.record_id if current else None)
    except LoginRefused:
        keep_on_error()
        return render_template("auth/break_glass.html", next_url=next_url, step_up=step_up,
                               error="Sign-in failed."), 401
    if current is not None:
        current.adopt(started)
    csrf.rotate()
    log.warning("break-glass session started", extra={"session": started.record.id})
    return redirect(next_url, 303)
