"""Console pages for the webhook pipeline: deliveries, one message, duplicates, dead letters and
parked messages, rejected traffic, replays. Reads need VIEW_PANELS; replays need REPLAY.

Every page includes the same partial that its fragment request returns (htmx sends ``HX-Target``
with the id of the element being refreshed), so a poll and a full load render identical HTML.
Pausing processing is the ``processing`` kill switch (console.flows, on-call, audited); these
pages show its state and link to it.
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

from console import navigation, request_params
from console.auth.settings import SensitiveAction
from console.auth.step_up import step_up_required
from console.finci import contract
from console.htmx import htmx
from console.ingress.models import Disposition, MessageStatus
from console.pipeline import handlers, replay, services
from console.security.permissions import Permission, require
from console.security.redaction import redact_text
from console.transactions import timeline
from console.unit_of_work import request_session
from console.web_actor import current_actor

bp = Blueprint("pipeline", __name__, url_prefix="/pipeline")
_FIELD_LIMIT = 200


@bp.record_once
def _on_register(state) -> None:
    navigation.register(state.app, "Deliveries", "pipeline.deliveries", Permission.VIEW_PANELS, 20)
    navigation.register(state.app, "Dead letters", "pipeline.dead_letters",
                        Permission.VIEW_PANELS, 21)
    # The web process computes replay previews ("would be a no-op"), so it knows the handlers too.
    handlers.load(state.app.extensions["settings"].ingress.handler_modules)


@bp.app_template_filter("pan_masked")
def _pan_masked(value) -> str:
    """Card numbers masked in anything shown that came from outside (ids, errors, headers)."""
    return redact_text(str(value))


@bp.app_template_filter("id_masked")
def _id_masked(value) -> str:
    """A FINCI id or business key shown: card numbers masked, FINCI's ids as typed (an 18-digit
    id passing the Luhn check is an id: console.finci.contract.is_finci_id)."""
    return redact_text(str(value), contract.is_finci_id)


@bp.app_template_filter("pretty_body")
def _pretty_body(value) -> str:
    return services.pretty(str(value))


def _fragment(target: str) -> bool:
    return bool(htmx) and htmx.target == target


def _text(name: str, source=None) -> str | None:
    value = (source or request.args).get(name, "").strip()
    if len(value) > _FIELD_LIMIT:
        abort(400, description=f"{name} is too long")
    return value or None


def _instant(name: str, source=None, *, end: bool = False) -> dt.datetime | None:
    return request_params.instant(name, _text(name, source), end=end)


def _choice(name: str, allowed, source=None) -> str | None:
    value = _text(name, source)
    if value is not None and value not in allowed:
        abort(400, description=f"{name} must be one of: {', '.join(allowed)}")
    return value


def _int(name: str, source=None) -> int | None:
    return request_params.integer(name, _text(name, source))


# --- deliveries ---------------------------------------------------------------------------------

@bp.get("/deliveries")
@require(Permission.VIEW_PANELS)
def deliveries():
    verification = _choice("verification", ("accepted", "rejected")) or "accepted"
    criteria = services.DeliveryFilter(
        type=_text("type"), q=_text("q"), status=_choice("status", MessageStatus.ALL),
        disposition=_choice("disposition", Disposition.ALL), since=_instant("since"),
        until=_instant("until", end=True), before_id=_int("before"))
    session = request_session()
    if verification == "rejected":
        rows = services.search_rejections(session, criteria, services.PAGE_SIZE + 1)
        last_id = rows[services.PAGE_SIZE - 1].id if len(rows) > services.PAGE_SIZE else None
    else:
        rows = services.search_deliveries(session, criteria, services.PAGE_SIZE + 1)
        last_id = rows[services.PAGE_SIZE - 1][0].id if len(rows) > services.PAGE_SIZE else None
    older_url = (url_for("pipeline.deliveries", **{**request.args.to_dict(), "before": last_id})
                 if last_id else None)
    context = {"rows": rows[:services.PAGE_SIZE], "verification": verification,
               "older_url": older_url, "args": request.args,
               "filtered": bool(criteria.as_dict())}
    if _fragment("delivery-rows"):
        return render_template("pipeline/_partials/_deliveries.html", **context)
    return render_template("pipeline/deliveries.html", types=services.message_types(session),
                           statuses=MessageStatus.ALL, dispositions=Disposition.ALL,
                           **context, **_status_context())


def _status_context() -> dict:
    session = request_session()
    per_minute = services.deliveries_per_minute(session)
    return {"backlog": services.backlog(session), "per_minute": per_minute,
            "per_minute_bars": services.bars(per_minute, width=600, height=48),
            "per_minute_total": sum(v for _, v in per_minute)}


@bp.get("/status")
@require(Permission.VIEW_PANELS)
def status():
    return render_template("pipeline/_partials/_status.html", **_status_context())


@bp.get("/messages/<int:message_id>")
@require(Permission.VIEW_PANELS)
def message(message_id: int):
    session = request_session()
    detail = services.message_detail(session, message_id)
    if detail is None:
        abort(404)
    transaction_id = (timeline.transaction_of_message(session, message_id)
                      if "transactions.show" in current_app.view_functions else None)
    return render_template("pipeline/message.html", detail=detail,
                           transaction_id=transaction_id)


@bp.post("/messages/<int:message_id>/replay")
@require(Permission.REPLAY)
@step_up_required(SensitiveAction.REPLAYS)
def replay_message(message_id: int):
    session = request_session()
    if services.message_detail(session, message_id) is None:
        abort(404)
    try:
        job = replay.start(session, current_actor(), replay.Criteria(message_id=message_id),
                           request.form.get("reason", ""), _ingress_settings())
    except replay.ReplayRefused as refused:
        flash(f"Replay refused: {refused}", "error")
        return redirect(url_for("pipeline.message", message_id=message_id), code=303)
    flash(f"Message {message_id} re-queued (replay #{job.id}); the worker picks it up within "
          "seconds.", "success")
    return redirect(url_for("pipeline.message", message_id=message_id), code=303)


# --- duplicates ---------------------------------------------------------------------------------

@bp.get("/duplicates")
@require(Permission.VIEW_PANELS)
def duplicates():
    session = request_session()
    context = {"rows": services.duplicates(session),
               "totals": services.duplicate_totals(session)}
    if _fragment("duplicates-panel"):
        return render_template("pipeline/_partials/_duplicates.html", **context)
    return render_template("pipeline/duplicates.html", **context)


# --- dead letters and parked --------------------------------------------------------------------

@bp.get("/dead-letters")
@require(Permission.VIEW_PANELS)
def dead_letters():
    session = request_session()
    context = {"rows": services.dead_and_parked(session),
               "retrying": services.failing(session),
               "backlog": services.backlog(session)}
    if _fragment("dead-letters-panel"):
        return render_template("pipeline/_partials/_dead_letters.html", **context)
    return render_template("pipeline/dead_letters.html", **context)


# --- rejected traffic ---------------------------------------------------------------------------

@bp.get("/rejections")
@require(Permission.VIEW_PANELS)
def rejections():
    context = {"summary": services.rejection_summary(request_session())}
    if _fragment("rejections-panel"):
        return render_template("pipeline/_partials/_rejections.html", **context)
    return render_template("pipeline/rejections.html", **context)


# --- replays ------------------------------------------------------------------------------------

def _ingress_settings():
    from flask import current_app

    return current_app.extensions["settings"].ingress


def _replay_criteria(source) -> replay.Criteria:
    try:
        return replay.Criteria(
            message_id=_int("message_id", source), type=_text("type", source),
            status=_choice("status", replay.REPLAYABLE_STATUSES, source),
            since=_instant("since", source), until=_instant("until", source, end=True))
    except replay.ReplayRefused as refused:
        abort(400, description=str(refused))


def _replays_context(**extra) -> dict:
    session = request_session()
    return {"jobs": services.recent_replays(session), "statuses": replay.REPLAYABLE_STATUSES,
            "types": services.message_types(session), **extra}


@bp.get("/replays")
@require(Permission.VIEW_PANELS)
def replays():
    if _fragment("replay-jobs"):
        return render_template("pipeline/_partials/_replays.html", **_replays_context())
    return render_template("pipeline/replays.html", args=request.args, **_replays_context())


@bp.get("/replays/preview")
@require(Permission.REPLAY)
def replay_preview():
    criteria = _replay_criteria(request.args)
    if criteria.is_empty:
        return render_template("pipeline/_partials/_preview.html", preview=None,
                               error="Choose at least one filter.")
    seen = replay.preview(request_session(), criteria)
    return render_template("pipeline/_partials/_preview.html", preview=seen, error=None,
                           criteria=criteria)


@bp.post("/replays")
@require(Permission.REPLAY)
@step_up_required(SensitiveAction.REPLAYS)
def replay_start():
    criteria = _replay_criteria(request.form)
    session = request_session()
    try:
        job = replay.start(session, current_actor(), criteria, request.form.get("reason", ""),
                           _ingress_settings())
    except replay.ReplayRefused as refused:
        return _replays_answer(error=f"Replay refused: {refused}")
    return _replays_answer(
        notice=f"Replay #{job.id} started: {job.total} messages, {job.expected_noops} no-ops.")


@bp.post("/replays/<int:job_id>/cancel")
@require(Permission.REPLAY)
@step_up_required(SensitiveAction.REPLAYS)
def replay_cancel(job_id: int):
    try:
        job = replay.cancel(request_session(), current_actor(), job_id)
    except replay.ReplayRefused as refused:
        return _replays_answer(error=f"Cancel refused: {refused}")
    return _replays_answer(notice=f"Replay #{job.id} cancelled at {job.done} of {job.total}.")


def _replays_answer(*, notice: str | None = None, error: str | None = None):
    """htmx gets the replays panel with the message in it; a plain form post is redirected to
    the replays page with the message flashed."""
    if htmx:
        body = render_template("pipeline/_partials/_replays.html",
                               **_replays_context(notice=notice, error=error))
        return (body, 422) if error else body
    flash(error or notice, "error" if error else "success")
    return redirect(url_for("pipeline.replays"), code=303)
