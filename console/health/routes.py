"""``/healthz``: the process answers. ``/readyz``: the database answers and is at our revision.

Both are public (load balancers call them) and reveal only up/down and short reasons: not the
migration revision, which tells an outsider the exact code version (operators have
``flask --app wsgi db current``).
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from console import migrate
from console.security.permissions import public
from console.unit_of_work import database

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@public
def healthz():
    return jsonify({"status": "ok"})


@bp.get("/readyz")
@public
def readyz():
    expected = current_app.extensions.setdefault("migration_head", migrate.head_revision())
    try:
        with database().engine.connect() as connection:
            current = migrate.current_revision(connection)
    except Exception:  # any failure to reach the database means not ready
        current_app.logger.warning("readiness: database unreachable")
        return jsonify({"status": "unavailable", "database": "unreachable"}), 503
    if current != expected:
        return jsonify({"status": "unavailable", "database": "migrations pending"}), 503
    return jsonify({"status": "ok", "database": "ok"})
