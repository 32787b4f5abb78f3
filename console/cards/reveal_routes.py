"""``POST /cards/<token_id>/reveal``: the full card number, for 30 seconds, to a permitted person.

The guards, in order: the reveal permission (no role grants it), a fresh sign-in, the
card-data reveal kill switch (off: 423 for everyone), CSRF (global). The answer is a fragment
that ``static/js/reveal.js`` blanks after ``REVEAL_SECONDS``; it is never cached and there is
no GET to view it again: a second look is a second, audited reveal.
"""

from __future__ import annotations

from flask import Blueprint, abort, current_app, render_template, request
from sqlalchemy import select

from console.auth.step_up import fresh_login_required
from console.cards.models import Card
from console.flows.guard import flow_required
from console.flows.services import Flow
from console.keys import card_data_keys, reveal
from console.secrets.store import SecretStoreError
from console.security.permissions import Permission, require
from console.unit_of_work import keep_on_error, request_session
from console.web_actor import current_actor

bp = Blueprint("card_reveal", __name__)


def _no_store(response):
    response.headers["Cache-Control"] = "no-store, max-age=0"
    response.headers["Pragma"] = "no-cache"
    return response


@bp.post("/cards/<path:token_id>/reveal")
@require(Permission.REVEAL_CARD_DATA)
@fresh_login_required
@flow_required(Flow.REVEAL)
def reveal_card(token_id: str):
    session = request_session()
    card = session.scalar(select(Card).where(Card.token_id == token_id))
    if card is None:
        abort(404)
    try:
        revealed = reveal.reveal(session, card_data_keys.configured_store(current_app), card,
                                 actor=current_actor(), reason=request.form.get("reason", ""),
                                 environment=current_app.extensions["settings"].environment.value)
    except reveal.RevealRefused as refused:
        keep_on_error()  # the refused attempt stays audited
        return _no_store(current_app.make_response(
            (render_template("cards/_partials/_reveal.html", card=card, error=refused.message,
                             revealed=None), refused.status)))
    except SecretStoreError:
        return _no_store(current_app.make_response(
            (render_template("cards/_partials/_reveal.html", card=card, revealed=None,
                             error="The secret store is unavailable."), 503)))
    return _no_store(current_app.make_response(render_template(
        "cards/_partials/_reveal.html", card=card, revealed=revealed, error=None,
        seconds=reveal.REVEAL_SECONDS)))
