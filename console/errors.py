"""Error pages: short, reveal nothing, keep the security headers (after_request still runs)."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, InternalServerError, MethodNotAllowed

log = logging.getLogger(__name__)


def _wants_json(app: Flask) -> bool:
    return (_blueprint(app) in app.config.get("JSON_ERROR_BLUEPRINTS", set())
            or request.accept_mimetypes.best == "application/json")


def _blueprint(app: Flask) -> str | None:
    """The request's blueprint; for a known path asked with a method it does not take (no rule
    matched, so Flask knows no blueprint), the blueprint owning the path, so a machine endpoint
    answers 405 in JSON like its other errors."""
    error = request.routing_exception
    if request.blueprint is not None or not isinstance(error, MethodNotAllowed):
        return request.blueprint
    # Routing refused this path only for its method: any method it named matches a rule.
    adapter = app.create_url_adapter(request)
    rule, _ = adapter.match(  # type: ignore[union-attr]
        method=sorted(error.valid_methods or ())[0], return_rule=True)
    return rule.endpoint.rpartition(".")[0] or None


def init_app(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        if _wants_json(app):
            response = jsonify({"status": "error", "error": error.name.lower().replace(" ", "_")})
            response.status_code = error.code or 500
        else:
            response = app.response_class(
                render_template("errors/error.html", error=error), status=error.code or 500)
        for name, value in error.get_headers():
            if name in {"Retry-After", "Allow", "WWW-Authenticate"}:
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def _unhandled(error: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _http_error(InternalServerError())
