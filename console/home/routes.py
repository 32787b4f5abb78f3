from __future__ import annotations

from flask import Blueprint, current_app, render_template

from console.monitoring import targets
from console.monitoring.panels import overview as build_overview
from console.monitoring.routes import recent_changes
from console.security.permissions import Permission, require
from console.unit_of_work import request_session

bp = Blueprint("home", __name__)


def _view():
    settings = current_app.extensions["settings"]
    return build_overview(request_session(), settings.environment.value)


@bp.get("/")
@require(Permission.VIEW_PANELS)
def overview():
    return render_template("home/overview.html", view=_view(), targets=targets,
                           changes=recent_changes())


@bp.get("/overview/panels")
@require(Permission.VIEW_PANELS)
def panels():
    return render_template("monitoring/_partials/_panels.html", view=_view(),
                           targets=targets)
