"""The "what changed" page: the feed of console.monitoring.changes, filtered and paged."""

from __future__ import annotations

from flask import Blueprint, render_template, request, url_for

from console import navigation, request_params
from console.db import utcnow
from console.htmx import htmx
from console.monitoring.changes import (
    PAGE_SIZE,
    RECENT,
    ChangeFilter,
    ChangeKind,
    Window,
    changes,
)
from console.security.permissions import Permission, has_permission, require
from console.unit_of_work import request_session

bp = Blueprint("changes", __name__, url_prefix="/changes")
DEFAULT_WINDOW = Window.WEEK


@bp.record_once
def _on_register(state):
    navigation.register(state.app, "What changed", "changes.index", Permission.VIEW_PANELS, 72)


def recent_changes():
    """The newest few, for the Overview (whatever their age: the list is short anyway)."""
    return changes(request_session(), ChangeFilter(),
                   with_audit=has_permission(Permission.VIEW_AUDIT), limit=RECENT)


@bp.get("/")
@require(Permission.VIEW_PANELS)
def index():
    window = request_params.choice("window", request.args.get("window"), Window, DEFAULT_WINDOW)
    kind = request_params.choice("kind", request.args.get("kind"), ChangeKind, None)
    before = request_params.integer("before", request.args.get("before"), minimum=1)
    criteria = ChangeFilter(kind=kind, before_seq=before,
                            since=utcnow() - window.span if window.span else None)
    items = changes(request_session(), criteria,
                    with_audit=has_permission(Permission.VIEW_AUDIT), limit=PAGE_SIZE + 1)
    older_url = None
    if len(items) > PAGE_SIZE:
        older_url = url_for("changes.index", **{**request.args.to_dict(),
                                                "before": items[PAGE_SIZE - 1].seq})
    context = {"changes": items[:PAGE_SIZE], "older_url": older_url, "window": window,
               "kind": kind, "windows": list(Window), "kinds": list(ChangeKind),
               "paged": before is not None}
    if htmx and htmx.target == "change-rows":
        return render_template("changes/_partials/_rows.html", **context)
    return render_template("changes/index.html", **context)


@bp.get("/recent")
@require(Permission.VIEW_PANELS)
def recent():
    """The Overview's list, polled like its panels."""
    return render_template("changes/_partials/_recent.html", changes=recent_changes())
