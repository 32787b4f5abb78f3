from __future__ import annotations

from flask import Blueprint, render_template

from console.home.services import deployment_status
from console.security.permissions import Permission, require
from console.unit_of_work import request_session

bp = Blueprint("home", __name__)


@bp.get("/")
@require(Permission.VIEW_PANELS)
def overview():
    return render_template("home/overview.html", status=deployment_status(request_session()))
