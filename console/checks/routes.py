"""Health page: every check's status, history, last and next run; on-call snoozes a check's
alerts (reason and expiry, audited) or runs it now (audited)."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, current_app, render_template, request

from console import navigation
from console.checks import sparkline
from console.checks.alerts import snoozed
from console.checks.services import MAX_REASON, CheckRefused, overview, run_now, snooze
from console.db import utcnow
from console.htmx import htmx
from console.security.permissions import Permission, require
from console.unit_of_work import request_session
from console.web_actor import current_actor

bp = Blueprint("checks", __name__, url_prefix="/health")

BADGES = {"ok": "ok", "failing": "error", "skipped": "warning", None: ""}
# Offered snooze lengths in minutes: a snooze always ends (the issue asks for a mandatory expiry).
SNOOZE_CHOICES = {"30": 30, "60": 60, "240": 240, "1440": 1440}


@bp.record_once
def _on_register(state):
    navigation.register(state.app, "Health checks", "checks.index", Permission.VIEW_PANELS, 74)


def _render(template: str = "checks/_partials/_checks.html", error: str | None = None,
            notice: str | None = None, status: int = 200):
    now = utcnow()
    context = {"views": overview(request_session(), now), "now": now, "badges": BADGES,
               "ticks": sparkline.ticks, "spark": sparkline, "snoozed": snoozed,
               "snooze_choices": SNOOZE_CHOICES, "max_reason": MAX_REASON,
               "error": error, "notice": notice}
    if template.endswith("_checks.html") and not htmx:
        template = "checks/index.html"  # a plain form post (no JavaScript) gets the whole page
    return render_template(template, **context), status


@bp.get("/")
@require(Permission.VIEW_PANELS)
def index():
    return _render("checks/index.html")


@bp.get("/panel")
@require(Permission.VIEW_PANELS)
def panel():
    """The polled table only: the snooze form beside it keeps what is being typed."""
    return _render("checks/_partials/_table.html")


@bp.post("/<check_id>/run")
@require(Permission.KILL_SWITCHES)
def run(check_id: str):
    settings = current_app.extensions["settings"]
    try:
        report = run_now(request_session(), current_actor(), settings, [check_id], utcnow())
    except CheckRefused as refused:
        return _render(error=str(refused)[:200], status=404)
    ran = report.ran[0]
    return _render(notice=f"{ran.check.id}: {ran.status} — {ran.detail}")


@bp.post("/snooze")
@require(Permission.KILL_SWITCHES)
def snooze_check():
    check_id = request.form.get("check_id", "")[:40]
    minutes = SNOOZE_CHOICES.get(request.form.get("minutes", ""))
    if minutes is None:
        return _render(error="choose how long the snooze lasts", status=422)
    now = utcnow()
    try:
        state = snooze(request_session(), current_actor(), check_id,
                       reason=request.form.get("reason", ""),
                       until=now + dt.timedelta(minutes=minutes), now=now)
    except CheckRefused as refused:
        return _render(error=f"{check_id}: {refused}"[:200], status=422)
    return _render(notice=f"{state.check_id} snoozed until {state.snoozed_until:%H:%M} UTC")
