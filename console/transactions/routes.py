"""Transaction pages: search by any identifier, the end-to-end timeline, posting failures."""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    url_for,
)

from console import navigation
from console.auth.settings import SensitiveAction
from console.auth.step_up import step_up_required
from console.htmx import htmx
from console.security.permissions import Permission, require
from console.transactions import services, timeline
from console.transactions.models import TransactionPosting
from console.unit_of_work import request_session
from console.web_actor import current_actor

bp = Blueprint("transactions", __name__, url_prefix="/transactions")


@bp.record_once
def _on_register(state):
    navigation.register(state.app, "Transactions", "transactions.index", Permission.VIEW_PANELS,
                        30)
    navigation.register(state.app, "Posting failures", "transactions.failures",
                        Permission.VIEW_PANELS, 32)
    state.app.jinja_env.filters["money"] = timeline.money


def _lifecycle():
    return current_app.extensions["settings"].lifecycle


@bp.get("/")
@require(Permission.VIEW_PANELS)
def index():
    session = request_session()
    error = None
    try:
        query = timeline.parse_query(request.args.get("q"), request.args.get("amount"),
                                     request.args.get("date"), request.args.get("state"))
    except timeline.QueryInvalid as invalid:
        query, error = timeline.Query(), str(invalid)
    results = None if query.empty else timeline.find(session, query)
    if query.text and results is not None and len(results) == 1:
        # An identifier names one transaction: open it rather than list one row.
        target = url_for("transactions.show", transaction_id=results[0].id)
        if htmx:
            return "", 200, {"HX-Redirect": target}
        return redirect(target, 303)
    context = {"query": query, "results": results, "error": error, "args": request.args,
               "attention": timeline.attention(session, 20) if query.empty else [],
               "states": timeline.counts_by_state(session)}
    if htmx and htmx.target == "transaction-results":
        return render_template("transactions/_partials/_results.html", **context)
    return render_template("transactions/index.html", **context)


def _timeline_context(transaction_id: int, error: str | None = None) -> dict:
    built = timeline.build(request_session(), transaction_id)
    if built is None:
        abort(404)
    return {"timeline": built, "axis": timeline.axis(built), "error": error,
            "message_link": "pipeline.message" in current_app.view_functions,
            "decision_link": "decisioning.detail" in current_app.view_functions}


@bp.get("/<int:transaction_id>")
@require(Permission.VIEW_PANELS)
def show(transaction_id: int):
    return render_template("transactions/timeline.html", **_timeline_context(transaction_id))


@bp.get("/<int:transaction_id>/events")
@require(Permission.VIEW_PANELS)
def events(transaction_id: int):
    return render_template("transactions/_partials/_timeline.html",
                           **_timeline_context(transaction_id))


@bp.get("/postings")
@require(Permission.VIEW_PANELS)
def failures():
    session = request_session()
    return render_template("transactions/failures.html",
                           failed=services.failed_postings(session),
                           counts=services.failure_counts(session),
                           orphans=timeline.parked(session, 100))


@bp.post("/postings/<int:posting_id>/retry")
@require(Permission.REPLAY)
@step_up_required(SensitiveAction.REPLAYS)
def retry(posting_id: int):
    session = request_session()
    accept = request.form.get("accept") == "over_hold"
    try:
        posting = services.retry_posting(session, current_actor(), posting_id, _lifecycle(),
                                         accept_over_hold=accept)
    except services.PostingNotFound:
        abort(404)
    except services.RetryRefused as refused:
        found = session.get(TransactionPosting, posting_id)
        return render_template("transactions/_partials/_timeline.html",
                               **_timeline_context(found.transaction_id, str(refused))), 422
    if htmx:
        return render_template("transactions/_partials/_timeline.html",
                               **_timeline_context(posting.transaction_id))
    return redirect(url_for("transactions.show", transaction_id=posting.transaction_id), 303)
