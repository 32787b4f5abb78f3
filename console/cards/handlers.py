"""Pipeline handler for ``card_status`` messages (registered in ``console.pipeline.handlers``)."""

from __future__ import annotations

from console.cards.models import StatusSource
from console.cards.refresh import apply_status_report
from console.finci.contract import MessageType
from console.pipeline import handlers


@handlers.register(MessageType.CARD_STATUS.value, name="cards.status")
def handle_card_status(ctx: handlers.Context) -> handlers.Result:
    message = ctx.message
    if not message.token_id:
        raise handlers.DeadLetter("card_status without token_id")
    change = apply_status_report(
        ctx.session, token_id=message.token_id, status=message.token_status,
        stage=message.token_stage, occurred_at=message.created_at, source=StatusSource.WEBHOOK,
        message_id=ctx.stored.id)
    if change.card_id is None:
        return handlers.Result("status recorded for a card not known yet")
    verdict = "applied" if change.applied else "recorded (older than the card's status)"
    flag = "" if change.modelled else ", outside the transition model"
    return handlers.Result(f"status {change.to_status} {verdict}{flag}")
