"""Kill switches page: everyone with panel access sees the state; on-call flips it."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, abort, render_template, request

from console import navigation
from console.auth.settings import SensitiveAction
from console.auth.step_up import step_up_required
from console.flows.services import Flow, FlowChangeRefused, all_states, set_flow
from console.security.permissions import Permission, require
from console.unit_of_work import request_session
from console.web_actor import current_actor

bp = Blueprint("flows", __name__, url_prefix="/flows")

REVERT_CHOICES = {"": None, "15": 15, "60": 60, "240": 240, "1440": 1440}


@bp.record_once
def _on_register(state):
    navigation.register(state.app, "Kill switches", "flows.index", Permission.VIEW_PANELS, 70)


def _render(template: str, error: str | None = None, status: int = 200):
    return render_template(template, states=all_states(request_session()), error=error,
                           revert_choices=REVERT_CHOICES), status


@bp.get("/")
@require(Permission.VIEW_PANELS)
def index():
    return _render("flows/index.html")


@bp.get("/panel")
@require(Permission.VIEW_PANELS)
def panel():
    """The polled state table only: the forms around it keep what an operator is typing."""
    return _render("flows/_partials/_states.html")


@bp.post("/<flow_name>")
@require(Permission.KILL_SWITCHES)
@step_up_required(SensitiveAction.KILL_SWITCHES)
def change(flow_name: str):
    try:
        flow = Flow(flow_name)
    except ValueError:
        abort(404)
    wanted = request.form.get("enabled")
    if wanted not in {"true", "false"}:
        abort(400, description="enabled must be true or false")
    revert = request.form.get("revert_minutes", "")
    if revert not in REVERT_CHOICES:
        abort(400, description="revert_minutes must be one of the offered choices")
    minutes = REVERT_CHOICES[revert]
    try:
        set_flow(request_session(), current_actor(), flow, enabled=wanted == "true",
                 reason=request.form.get("reason", ""),
                 revert_after=dt.timedelta(minutes=minutes) if minutes else None)
    except FlowChangeRefused as refused:
        return _render("flows/_partials/_switches.html", error=f"{flow.value}: {refused}",
                       status=422)
    return _render("flows/_partials/_switches.html")
