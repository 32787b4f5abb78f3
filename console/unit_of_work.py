"""One database session and one commit per web request (DESIGN.md convention 3).

Routes and services never commit. The response is committed here, before it is sent, so a 2xx
always means durable. A failed commit becomes a 503 with Retry-After instead of a false success.
Error responses roll back, unless the handler asked to keep its writes (e.g. a denial that must
stay audited) with ``keep_on_error()``.
"""

from __future__ import annotations

import json
import logging

from flask import Flask, current_app, g, request
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from console.db import Database

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = "5"


def database() -> Database:
    return current_app.extensions["database"]


def request_session() -> Session:
    session = getattr(g, "db_session", None)
    if session is None:
        session = g.db_session = database().session()
    return session


def keep_on_error() -> None:
    g.db_keep_on_error = True


def unavailable_response(app: Flask):
    wants_json = request.blueprint in app.config.get("JSON_ERROR_BLUEPRINTS", set())
    body = (json.dumps({"status": "unavailable"}) if wants_json
            else "The console's database is unavailable. Try again shortly.")
    response = app.response_class(body, status=503,
                                  mimetype="application/json" if wants_json else "text/plain")
    response.headers["Retry-After"] = RETRY_AFTER_SECONDS
    return response


def init_app(app: Flask, db: Database) -> None:
    app.extensions["database"] = db

    @app.after_request
    def _commit(response):
        session = g.pop("db_session", None)
        if session is None:
            return response
        try:
            if response.status_code < 400 or g.get("db_keep_on_error"):
                session.commit()
            else:
                session.rollback()
        except SQLAlchemyError:
            log.exception("commit failed; answering 503")
            session.rollback()
            response = unavailable_response(app)
        finally:
            session.close()
        return response

    @app.teardown_request
    def _close(_exc):
        session = g.pop("db_session", None)
        if session is not None:  # an exception skipped after_request
            session.rollback()
            session.close()

    @app.errorhandler(SQLAlchemyError)
    def _database_error(error):
        # Pool timeout, refused connection, statement timeout: the database is the problem.
        log.error("database error: %s", type(error).__name__)
        session = g.pop("db_session", None)
        if session is not None:
            session.rollback()
            session.close()
        return unavailable_response(app)
