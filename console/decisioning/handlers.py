"""The worker's handler for ``authorization`` messages (registered in console.pipeline).

- Advice (``advice=true``): :func:`console.decisioning.advice.apply_advice`.
- Request (``advice=false``): already answered synchronously by the ingress; the worker only
  notes what was decided (the decision record was written with the message, or the ingress
  answered without one, e.g. with decisioning unavailable).

Issue #6 extends this handler (timelines) rather than registering a second one: the registry
allows one handler per message type.
"""

from __future__ import annotations

from sqlalchemy import select

from console.decisioning.advice import apply_advice
from console.decisioning.models import DecisionRecord
from console.decisioning.port import current_settings
from console.finci import contract
from console.pipeline import handlers
from console.transactions import handlers as lifecycle


@handlers.register(contract.MessageType.AUTHORIZATION.value, name="decisioning.authorization")
def handle_authorization(ctx: handlers.Context) -> handlers.Result:
    decided = _decisioning(ctx)
    # Then the transaction lifecycle (issue #6): link, derive the state, settle the hold. Its
    # outcome is on the transaction (timeline), so the effect summary stays decisioning's.
    lifecycle.apply(ctx)
    return handlers.Result(decided)


def _decisioning(ctx: handlers.Context) -> str:
    message = ctx.message
    if message.is_advice:
        result = apply_advice(ctx.session, message, current_settings(), message_id=ctx.stored.id)
        if result.already_applied:
            return f"advice already applied: {result.outcome.value}"
        return f"advice {result.outcome.value}, hold {result.hold_action.value}"
    answer = ctx.session.scalar(select(DecisionRecord.answer)
                                .where(DecisionRecord.authorization_id == message.id))
    if answer is None:
        return (f"request answered at ingress without a decision record "
                f"({ctx.stored.decision or 'no answer recorded'})")
    return f"request decided at ingress: {answer}"
