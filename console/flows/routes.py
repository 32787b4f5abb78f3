"""Kill switches page: everyone with panel access sees the state; on-call flips it (or, for a
four-eyes flow, asks and another on-call engineer decides)."""

from __future__ import annotations

import datetime as dt
import logging

from flask import Blueprint, abort, current_app, render_template, request
from sqlalchemy.exc import SQLAlchemyError

from console import navigation
from console.auth.access import current_user_record
from console.auth.settings import SensitiveAction
from console.auth.step_up import step_up_required
from console.db import utcnow
from console.flows import approvals, blast_radius
from console.flows.approvals import Decision
from console.flows.services import Flow, FlowChangeRefused, all_states, off_states
from console.security.permissions import Permission, require
from console.unit_of_work import request_session
from console.web_actor import current_actor

log = logging.getLogger(__name__)

bp = Blueprint("flows", __name__, url_prefix="/flows")

REVERT_CHOICES = {"": None, "15": 15, "60": 60, "240": 240, "1440": 1440}


@bp.record_once
def _on_register(state):
    navigation.register(state.app, "Kill switches", "flows.index", Permission.VIEW_PANELS, 70)
    state.app.context_processor(_banner_context)


def _banner_context():
    return {"flows_off_banner": flows_off_banner}


def flows_off_banner() -> dict | None:
    """The banner on every signed-in page while a flow is off (from the cached state). Nothing
    for anonymous visitors; never an error page because the database is unreachable."""
    try:
        if current_user_record() is None:
            return None
        states = off_states(request_session())
    except SQLAlchemyError:
        log.warning("kill switch banner: switch state unavailable")
        return {"unavailable": True, "states": [], "now": utcnow()}
    return {"unavailable": False, "states": states, "now": utcnow()} if states else None


def _policy():
    return current_app.extensions["settings"].flows


def _render(template: str, error: str | None = None, notice: str | None = None,
            status: int = 200):
    session = request_session()
    now = utcnow()
    return render_template(
        template, states=all_states(session), error=error, notice=notice, now=now,
        revert_choices=REVERT_CHOICES, policy=_policy(), me=current_actor().id,
        requests=approvals.pending(session, now), impacts=blast_radius.last_hour(session, now),
        same_person=approvals.same_person), status


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
        result = approvals.change(
            request_session(), current_actor(), flow, enabled=wanted == "true",
            reason=request.form.get("reason", ""), policy=_policy(),
            revert_after=dt.timedelta(minutes=minutes) if minutes else None)
    except FlowChangeRefused as refused:
        return _render("flows/_partials/_switches.html", error=f"{flow.value}: {refused}",
                       status=422)
    notice = None
    if result.request is not None:
        notice = (f"Request #{result.request.id} filed: another on-call engineer must approve "
                  f"it before {result.request.expires_at:%H:%M} UTC.")
    return _render("flows/_partials/_switches.html", notice=notice)


@bp.post("/requests/<int:request_id>/<decision>")
@require(Permission.KILL_SWITCHES)
@step_up_required(SensitiveAction.KILL_SWITCHES)
def decide(request_id: int, decision: str):
    try:
        chosen = Decision(decision)
    except ValueError:
        abort(404)
    try:
        approvals.decide(request_session(), current_actor(), request_id, chosen)
    except FlowChangeRefused as refused:
        return _render("flows/_partials/_switches.html", error=str(refused), status=422)
    done = {Decision.APPROVE: "approved and applied", Decision.REJECT: "rejected",
            Decision.CANCEL: "cancelled"}[chosen]
    return _render("flows/_partials/_switches.html", notice=f"Request #{request_id} {done}.")
