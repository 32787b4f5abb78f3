"""Error pages: short, reveal nothing, keep the security headers (after_request still runs)."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, InternalServerError

log = logging.getLogger(__name__)


def _wants_json(app: Flask) -> bool:
    return (request.blueprint in app.config.get("JSON_ERROR_BLUEPRINTS", set())
            or request.accept_mimetypes.best == "application/json")


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
