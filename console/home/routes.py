from __future__ import annotations

from flask import Blueprint, current_app, render_template, request

from console import request_params
from console.monitoring import targets
from console.monitoring.panels import overview as build_overview
from console.monitoring.routes import recent_changes
from console.monitoring.windows import DEFAULT_WINDOW, PanelWindow, traffic
from console.security.permissions import Permission, require
from console.unit_of_work import request_session

bp = Blueprint("home", __name__)


def _context() -> dict:
    settings = current_app.extensions["settings"]
    window = request_params.choice("window", request.args.get("window"), PanelWindow,
                                   DEFAULT_WINDOW)
    view = build_overview(request_session(), settings.environment.value)
    return {"view": view, "traffic": traffic(request_session(), window, view.at),
            "window": window, "windows": list(PanelWindow), "default_window": DEFAULT_WINDOW,
            "targets": targets,
            # The default window stays out of URLs (the polled one included).
            "window_arg": None if window is DEFAULT_WINDOW else window.value}


@bp.get("/")
@require(Permission.VIEW_PANELS)
def overview():
    return render_template("home/overview.html", changes=recent_changes(), **_context())


@bp.get("/overview/panels")
@require(Permission.VIEW_PANELS)
def panels():
    return render_template("monitoring/_partials/_panels.html", **_context())
