"""Wires identity into the app: the session store, flask-login, and the three extension hooks
the rest of the console uses (``permission_enforcer``, ``permission_checker``,
``actor_resolver``)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import flask_login
from flask import Flask, abort, g, make_response, redirect, request, session, url_for
from flask_login import LoginManager
from sqlalchemy.exc import SQLAlchemyError

from console.audit.actions import ActorType
from console.auth import denials, services
from console.auth.models import User
from console.auth.sessions import DatabaseSessionInterface, ServerSession, SessionLimits
from console.db import utcnow
from console.htmx import htmx
from console.security.headers import allow_form_action
from console.security.permissions import Permission
from console.settings import Settings
from console.unit_of_work import keep_on_error, request_session

# C0 controls, DEL and the C1 controls: never part of a path anyone links to.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def server_session() -> ServerSession | None:
    return session if isinstance(session, ServerSession) else None  # type: ignore[return-value]


def current_user_record() -> User | None:
    """The signed-in user of this request, or None."""
    user = flask_login.current_user
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return user._get_current_object()  # type: ignore[attr-defined]


def is_break_glass_session() -> bool:
    current = server_session()
    return bool(current and current.authenticated and current.break_glass)


def granted_permissions() -> frozenset[Permission]:
    user = current_user_record()
    if user is None:
        return frozenset()
    return services.permissions_of(user, break_glass=is_break_glass_session())


def safe_next(value: str | None) -> str:
    """Only same-site paths: ``next`` must never send a user to another host. Control
    characters (CR, LF, tab, NUL...) are refused outright: URL parsers and browsers drop some of
    them (a tab between two slashes makes ``//evil``, another host) and a Location header cannot
    carry CR or LF at all. What is left, one leading slash and no control characters, has no
    scheme and no host by construction."""
    if (not value or not value.startswith("/") or value.startswith("//") or "\\" in value
            or _CONTROL.search(value)):
        return "/"
    return value


def return_to() -> str:
    """Where to send the user back after signing in (the page they were looking at)."""
    if htmx:
        current = request.headers.get("HX-Current-URL", "")
        parts = urlsplit(current)
        if parts.netloc == request.host:
            return safe_next(parts.path + (f"?{parts.query}" if parts.query else ""))
        return "/"
    if request.method in {"GET", "HEAD"}:
        return safe_next(request.full_path.rstrip("?"))
    referrer = urlsplit(request.referrer or "")
    if referrer.netloc == request.host:
        return safe_next(referrer.path + (f"?{referrer.query}" if referrer.query else ""))
    return "/"


def wants_json(app: Flask) -> bool:
    return (request.blueprint in app.config.get("JSON_ERROR_BLUEPRINTS", set())
            or request.accept_mimetypes.best == "application/json")


def send_to(app: Flask, url: str, *, status: int, description: str,
            redirect_forms: bool = False):
    """Abort towards ``url``: HX-Redirect for htmx, a redirect for page loads (and form posts
    when ``redirect_forms``), else ``status`` (JSON clients, unsafe requests)."""
    if htmx:
        response = make_response("", status)
        response.headers["HX-Redirect"] = url
        abort(response)
    if not wants_json(app) and (request.method in {"GET", "HEAD"} or redirect_forms):
        abort(redirect(url, 302 if request.method in {"GET", "HEAD"} else 303))
    abort(status, description=description)


def _audit_denial(permission: Permission, status: int) -> None:
    from console.web_actor import current_actor

    services.record_denial(request_session(), actor=current_actor(), permission=permission,
                           status=status, method=request.method, path=request.path)
    # The response is an error; the denial row must survive the rollback of its transaction.
    keep_on_error()


def _count_anonymous_denial(permission: Permission) -> None:
    """Counted, then audited in batches (console.auth.denials): a flood of anonymous calls
    costs one row a minute per source, not an audit row each."""
    denials.count(request_session(), source_ip=request.remote_addr, permission=permission,
                  status=401, method=request.method, path=request.path, at=utcnow())
    keep_on_error()


def make_enforcer(app: Flask):
    def enforce(permission: Permission) -> None:
        if current_user_record() is None:
            # A page or fragment load without a session is only sent to sign in: every sign-in
            # starts that way and anonymous GETs must not become audit rows one by one. An
            # anonymous write or API call is a denial: counted now, audited by the scheduler.
            if request.method not in {"GET", "HEAD"} or wants_json(app):
                _count_anonymous_denial(permission)
            current = server_session()
            login_url = url_for("auth.login", next=return_to(),
                                expired="1" if current is not None and current.expired else None)
            send_to(app, login_url, status=401, description="Sign in to continue.")
        if permission not in granted_permissions():
            _audit_denial(permission, 403)
            abort(403, description="Your role does not allow this.")

    return enforce


def _check(permission: Permission) -> bool:
    return permission in granted_permissions()


def _resolve_actor() -> tuple[ActorType, str]:
    user = current_user_record()
    if user is None:
        return ActorType.ANONYMOUS, "anonymous"
    if is_break_glass_session():
        return ActorType.BREAK_GLASS, user.username
    return ActorType.USER, user.username


def _load_user(_request) -> User | None:
    current = server_session()
    if current is None or not current.authenticated:
        return None
    try:
        user = request_session().get(User, current.user_id)
    except SQLAlchemyError:
        return None
    if user is None or user.disabled:
        return None
    return user


def init_app(app: Flask, settings: Settings) -> None:
    limits = SessionLimits.from_settings(settings.auth)
    app.extensions["session_limits"] = limits
    app.session_interface = DatabaseSessionInterface(limits)

    manager = LoginManager()
    # Sessions are server-side rows already bound to one sign-in; an IP or user-agent change
    # (mobile networks, proxies) is not evidence of theft worth logging people out for.
    manager.session_protection = None
    manager.request_loader(_load_user)
    manager.init_app(app)

    app.extensions["permission_enforcer"] = make_enforcer(app)
    app.extensions["permission_checker"] = _check
    app.extensions["actor_resolver"] = _resolve_actor

    if settings.auth.oidc_configured:
        from console.auth.oidc import OidcClient

        app.extensions["oidc_client"] = OidcClient(settings.auth)
    elif settings.relaxed is False:
        app.logger.error("OIDC is not configured: nobody can sign in with SSO "
                         "(set OIDC_ISSUER, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET)")

    @app.after_request
    def _allow_idp_logout(response):
        # The sign-out form on every signed-in page POSTs, then redirects to the IdP's
        # end-session endpoint; Chrome applies CSP form-action to that redirect.
        client = app.extensions.get("oidc_client")
        if client is not None and getattr(g, "_login_user", None) is not None \
                and current_user_record() is not None:
            for origin in client.origins():
                allow_form_action(origin)
        return response

    @app.context_processor
    def _auth_context():
        return {"break_glass_session": is_break_glass_session,
                "current_user_record": current_user_record}
