"""Pipeline handlers for the transaction lifecycle (registered in ``console.pipeline.handlers``).

Reversals, presentments and refunds are registered here. ``authorization`` messages have one
handler, decisioning's (the advice against our answer, the hold); it calls :func:`apply` after its
own work, so the transaction sees the hold exactly as the advice left it.

Each message is linked to its transaction and the transaction settled (state derived from all its
messages, ledger brought in line) in the worker's transaction, together with the "processed"
mark: the effect happens once, or not at all.
"""

from __future__ import annotations

from console.db import utcnow
from console.finci.contract import MessageType
from console.pipeline import handlers
from console.transactions import settings as lifecycle_settings
from console.transactions.linking import Unlinkable, link
from console.transactions.services import Settled, lock_account_of, settle


def apply(ctx: handlers.Context) -> Settled:
    now = utcnow()
    lock_account_of(ctx.session, ctx.message.token_id)
    try:
        transaction, _new = link(ctx.session, ctx.stored, ctx.message, now)
    except Unlinkable as exc:
        raise handlers.DeadLetter(str(exc)) from None
    return settle(ctx.session, transaction, lifecycle_settings.current(), now=now)


@handlers.register(MessageType.REVERSAL.value, name="transactions.reversal")
@handlers.register(MessageType.PRESENTMENT.value, name="transactions.presentment")
@handlers.register(MessageType.REFUND.value, name="transactions.refund")
def handle_lifecycle_message(ctx: handlers.Context) -> handlers.Result:
    return handlers.Result(f"{ctx.message.type}: {apply(ctx).summary}")
