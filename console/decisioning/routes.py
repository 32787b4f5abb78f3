"""Decisioning pages: decisions and their detail, divergences from FINCI's advices, the rules.

Reads need ``VIEW_PANELS``; changing the rules needs ``MANAGE_SETTINGS`` (admins) and is audited
by the service in the same transaction.
"""

from __future__ import annotations

import datetime as dt

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy import select

from console import navigation, request_params
from console.auth.settings import SensitiveAction
from console.auth.step_up import step_up_required
from console.db import utcnow
from console.decisioning import queries
from console.decisioning.config import (
    ConfigConflict,
    ConfigInvalid,
    active_config,
    document_from_form,
    history,
    save_config,
)
from console.decisioning.models import AdviceOutcome, DecisionRecord, Reason
from console.decisioning.port import current_settings
from console.htmx import htmx
from console.ingress.models import StoredMessage
from console.ledger.models import Hold
from console.ledger.money import format_minor
from console.security.permissions import Permission, require
from console.transactions.models import CardTransaction
from console.unit_of_work import request_session
from console.web_actor import current_actor

bp = Blueprint("decisioning", __name__, url_prefix="/decisions")

WINDOWS = {"1h": dt.timedelta(hours=1), "24h": dt.timedelta(hours=24),
           "7d": dt.timedelta(days=7), "30d": dt.timedelta(days=30)}
_FIELD_LIMIT = 64


@bp.record_once
def _on_register(state):
    navigation.register(state.app, "Decisions", "decisioning.decisions", Permission.VIEW_PANELS,
                        30)


bp.add_app_template_global(format_minor, "format_minor")


@bp.app_template_global("reason_label")
def reason_label(value: str | None) -> str:
    try:
        return queries.REASON_LABELS[Reason(value)]
    except ValueError:
        return value or "—"


@bp.app_template_global("outcome_label")
def outcome_label(value: str | None) -> str:
    if value is None:
        return "awaiting advice"
    try:
        return queries.OUTCOME_LABELS[AdviceOutcome(value)]
    except ValueError:
        return value


def _text(name: str) -> str | None:
    value = request.args.get(name, "").strip()
    if len(value) > _FIELD_LIMIT:
        abort(400, description=f"{name} is too long")
    return value or None


def _window() -> tuple[str, dt.datetime]:
    name = request.args.get("window", "24h")
    if name not in WINDOWS:
        abort(400, description=f"window must be one of {', '.join(WINDOWS)}")
    return name, utcnow() - WINDOWS[name]


def _criteria() -> queries.DecisionFilter:
    answer = _text("answer")
    if answer and answer not in {"success", "error"}:
        abort(400, description="answer must be success or error")
    reason = _text("reason")
    if reason and reason not in {r.value for r in Reason}:
        abort(400, description="unknown reason")
    outcome = _text("outcome")
    if outcome and outcome not in {"divergent", "pending", *(o.value for o in AdviceOutcome)}:
        abort(400, description="unknown advice outcome")
    return queries.DecisionFilter(
        answer=answer, reason=reason, defaults_only=request.args.get("defaults") == "1",
        token_id=_text("token"), authorization_id=_text("authorization"), outcome=outcome,
        before_id=request_params.integer("before", _text("before")))


def _rows_context(criteria: queries.DecisionFilter, endpoint: str) -> dict:
    rows = queries.search(request_session(), criteria, queries.PAGE_SIZE + 1)
    older_url = None
    if len(rows) > queries.PAGE_SIZE:
        older_url = url_for(endpoint, **{**request.args.to_dict(),
                                         "before": rows[queries.PAGE_SIZE - 1].id})
    return {"decisions": rows[:queries.PAGE_SIZE], "older_url": older_url,
            "criteria": criteria, "reasons": list(Reason), "outcomes": list(AdviceOutcome)}


@bp.get("/")
@require(Permission.VIEW_PANELS)
def decisions():
    context = _rows_context(_criteria(), "decisioning.decisions")
    if htmx and htmx.target == "decision-rows":
        return render_template("decisioning/_partials/_rows.html", **context)
    window, since = _window()
    return render_template("decisioning/decisions.html", window=window, windows=WINDOWS,
                           summary=queries.summary(request_session(), since),
                           mode=current_settings().mode.value, **context)


@bp.get("/summary")
@require(Permission.VIEW_PANELS)
def summary():
    window, since = _window()
    return render_template("decisioning/_partials/_summary.html", window=window,
                           windows=WINDOWS, summary=queries.summary(request_session(), since))


@bp.get("/<int:record_id>")
@require(Permission.VIEW_PANELS)
def detail(record_id: int):
    session = request_session()
    record = session.get(DecisionRecord, record_id)
    if record is None:
        abort(404)
    hold = session.scalar(select(Hold).where(Hold.authorization_id == record.authorization_id))
    stages = record.latency_ms or {}
    slowest = max(stages.values(), default=0.0) or 1.0
    transaction_id = session.scalar(select(CardTransaction.id).where(
        CardTransaction.authorization_id == record.authorization_id).limit(1))
    # The stored request FINCI sent (the advice's message id is on the record).
    request_message_id = session.scalar(select(StoredMessage.id).where(
        StoredMessage.type == "authorization", StoredMessage.advice.is_(False),
        StoredMessage.finci_id == record.authorization_id).limit(1))
    return render_template("decisioning/detail.html", record=record, hold=hold, stages=stages,
                           slowest=slowest, transaction_id=transaction_id,
                           request_message_id=request_message_id,
                           message_link="pipeline.message" in current_app.view_functions)


@bp.get("/divergences")
@require(Permission.VIEW_PANELS)
def divergences():
    window, since = _window()
    outcome = _text("outcome") or "divergent"
    if outcome not in {"divergent", *(o.value for o in AdviceOutcome)}:
        abort(400, description="unknown advice outcome")
    criteria = queries.DecisionFilter(outcome=outcome, before_id=_criteria().before_id)
    context = _rows_context(criteria, "decisioning.divergences")
    if htmx and htmx.target == "decision-rows":
        return render_template("decisioning/_partials/_rows.html", **context)
    return render_template("decisioning/divergences.html", window=window, windows=WINDOWS,
                           summary=queries.summary(request_session(), since),
                           selected=outcome, **context)


def _rules_page(problems: list[str] | None = None, form=None, status: int = 200):
    session = request_session()
    config = active_config(session)
    return render_template("decisioning/rules.html", config=config, versions=history(session),
                           problems=problems or [], form=form,
                           settings_=current_settings()), status


@bp.get("/rules")
@require(Permission.VIEW_PANELS)
def rules():
    return _rules_page()


@bp.post("/rules")
@require(Permission.MANAGE_SETTINGS)
@step_up_required(SensitiveAction.RULES)
def update_rules():
    session = request_session()
    expected = request_params.integer("version", request.form.get("version"))
    if expected is None:
        abort(400, description="version is required")
    try:
        document = document_from_form(request.form)
        config = save_config(session, current_actor(), document,
                             reason=request.form.get("reason", ""),
                             expected_version=expected)
    except ConfigInvalid as invalid:
        return _rules_page(invalid.problems, request.form, 422)
    except ConfigConflict as conflict:
        return _rules_page([f"{conflict}; review the current rules and save again"], None, 409)
    flash(f"Rules saved as version {config.version}.", "success")
    return redirect(url_for("decisioning.rules"), code=303)
