"""CSRF protection for every unsafe method on the console (the webhook ingress is exempt: it has
no cookies and authenticates each request by signature).

A per-session random token travels in a form field or, for htmx, in the ``X-CSRF-Token`` header
set once on ``<body hx-headers>``. The Origin header, when present, must be our own origin.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from flask import Flask, abort, request, session

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
SESSION_KEY = "_csrf"
FORM_FIELD = "csrf_token"
HEADER = "X-CSRF-Token"


def csrf_token() -> str:
    token = session.get(SESSION_KEY)
    if not token:
        token = session[SESSION_KEY] = secrets.token_urlsafe(32)
    return token


def rotate() -> None:
    """Issue a fresh token (at login), so a token seen before authentication is worthless."""
    session[SESSION_KEY] = secrets.token_urlsafe(32)


class CsrfRefused(Exception):
    pass


def _check() -> None:
    origin = request.headers.get("Origin")
    if origin and origin != "null":
        parts = urlsplit(origin)
        if parts.netloc != request.host or parts.scheme != request.scheme:
            raise CsrfRefused("cross-origin request")
    expected = session.get(SESSION_KEY)
    sent = request.headers.get(HEADER) or request.form.get(FORM_FIELD)
    if not expected or not sent or not hmac.compare_digest(str(sent), str(expected)):
        raise CsrfRefused("missing or wrong CSRF token")


def init_app(app: Flask, *, exempt_blueprints: set[str]) -> None:
    app.jinja_env.globals["csrf_token"] = csrf_token

    @app.before_request
    def _protect():
        if request.method in SAFE_METHODS or request.blueprint in exempt_blueprints:
            return None
        if request.routing_exception is not None:
            # No view runs (unknown path, method the route does not take): nothing to protect,
            # and the caller should hear 404/405, not "this form has expired".
            return None
        try:
            _check()
        except CsrfRefused as refused:
            app.logger.warning("csrf refused", extra={"reason": str(refused),
                                                       "path": request.path})
            abort(403, description="This form has expired or did not come from this console. "
                                   "Reload the page and try again.")
        return None
