"""``/metrics`` for Prometheus: a bearer token, not SSO (a scraper has no browser session).

Served by every node, console and ingress alike, since the figures come from the database.
Without ``CONSOLE_METRICS_TOKEN`` the endpoint does not exist (404); a missing or wrong token is
401 with ``WWW-Authenticate: Bearer``. Machine errors are JSON (console.MACHINE_BLUEPRINTS).
"""

from __future__ import annotations

from flask import Blueprint, abort, current_app, request
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import Unauthorized

from console.monitoring.metrics import CONTENT_TYPE, exposition
from console.security.permissions import public
from console.unit_of_work import request_session

bp = Blueprint("metrics", __name__)
_SCHEME = "bearer "


def _presented_token() -> str | None:
    header = request.headers.get("Authorization", "")
    if header[:len(_SCHEME)].lower() != _SCHEME:
        return None
    return header[len(_SCHEME):].strip() or None


@bp.get("/metrics")
@public  # authenticated by its own bearer token below, not by a console session
def metrics():
    settings = current_app.extensions["settings"].metrics
    if not settings.enabled:
        abort(404)
    token = _presented_token()
    if token is None or not settings.accepts(token):
        raise Unauthorized(www_authenticate=WWWAuthenticate("Bearer", {"realm": "metrics"}))
    response = current_app.response_class(exposition(request_session()),
                                          content_type=CONTENT_TYPE)
    response.headers["Cache-Control"] = "no-store"
    return response
