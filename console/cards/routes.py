"""Card pages: the local view of FINCI's cards, status history, and operator card actions."""

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
from sqlalchemy import or_, select

from console import navigation
from console.auth.settings import SensitiveAction
from console.auth.step_up import step_up_required
from console.cards import actions
from console.cards.models import Card, CardAction
from console.cards.refresh import status_history
from console.finci.card_status import is_end_state
from console.flows.services import Flow, is_enabled
from console.htmx import htmx
from console.security.permissions import Permission, require
from console.transactions import timeline
from console.transactions.models import CardTransaction
from console.unit_of_work import request_session
from console.web_actor import current_actor

bp = Blueprint("cards", __name__, url_prefix="/cards")
PAGE = 100


@bp.record_once
def _on_register(state):
    navigation.register(state.app, "Cards", "cards.index", Permission.VIEW_PANELS, 34)


def _lifecycle():
    return current_app.extensions["settings"].lifecycle


@bp.get("/")
@require(Permission.VIEW_PANELS)
def index():
    session = request_session()
    text = timeline.parse_query(request.args.get("q", "")[:100]).text  # a full number masked
    query = select(Card).order_by(Card.updated_at.desc(), Card.id.desc()).limit(PAGE)
    if text:
        masked = timeline.masked_pattern(text) or text
        query = query.where(or_(Card.token_id == text, Card.masked_number == masked,
                                Card.person_id == text, Card.corporate_id == text,
                                Card.employee_id == text))
    status = request.args.get("status", "")
    if status:
        query = query.where(Card.status == status)
    context = {"cards": session.scalars(query).all(), "text": text, "status": status,
               "attention": actions.attention(session, 20)}
    if htmx and htmx.target == "card-rows":
        return render_template("cards/_partials/_rows.html", **context)
    return render_template("cards/index.html", **context)


def _card_context(token_id: str, error: str | None = None) -> dict:
    session = request_session()
    card = session.scalar(select(Card).where(Card.token_id == token_id))
    if card is None:
        abort(404)
    return {
        "card": card, "error": error,
        "allowed": actions.allowed_actions(card.status),
        "end_state": is_end_state(card.status),
        "open_action": actions.open_action(session, card.id),
        "history": actions.actions_for(session, card.id),
        "changes": status_history(session, card.token_id),
        "flow_on": is_enabled(session, Flow.CARD_ACTIONS),
        "api_configured": _lifecycle().card_api_configured,
        "transactions": session.scalars(
            select(CardTransaction).where(CardTransaction.token_id == card.token_id)
            .order_by(CardTransaction.last_event_at.desc()).limit(20)).all(),
    }


@bp.get("/<token_id>")
@require(Permission.VIEW_PANELS)
def show(token_id: str):
    return render_template("cards/card.html", **_card_context(token_id))


@bp.get("/<token_id>/actions")
@require(Permission.VIEW_PANELS)
def panel(token_id: str):
    return render_template("cards/_partials/_actions.html", **_card_context(token_id))


def _after_action(token_id: str, error: str | None):
    if htmx:
        return (render_template("cards/_partials/_actions.html",
                                **_card_context(token_id, error)), 422 if error else 200)
    if error:
        return render_template("cards/card.html", **_card_context(token_id, error)), 422
    return redirect(url_for("cards.show", token_id=token_id), 303)


@bp.post("/<token_id>/actions")
@require(Permission.CARD_ACTIONS)
@step_up_required(SensitiveAction.CARD_STATUS)
def request_action(token_id: str):
    try:
        actions.request_action(request_session(), current_actor(), token_id,
                               request.form.get("action", ""), request.form.get("reason", ""),
                               _lifecycle())
    except LookupError:
        abort(404)
    except actions.ActionRefused as refused:
        return _after_action(token_id, str(refused))
    return _after_action(token_id, None)


@bp.post("/actions/<int:action_id>/retry")
@require(Permission.CARD_ACTIONS)
@step_up_required(SensitiveAction.CARD_STATUS)
def retry(action_id: int):
    session = request_session()
    try:
        row = actions.retry_action(session, current_actor(), action_id)
    except LookupError:
        abort(404)
    except actions.ActionRefused as refused:
        found = session.get(CardAction, action_id)
        return _after_action(found.token_id, str(refused))
    return _after_action(row.token_id, None)


@bp.get("/actions")
@require(Permission.VIEW_PANELS)
def failed_actions():
    session = request_session()
    return render_template("cards/actions.html", rows=actions.attention(session),
                           flow_on=is_enabled(session, Flow.CARD_ACTIONS))
