"""``flow_required(flow)``: a view decorator refusing a request while its flow is switched off.

The answer is 423 Locked with the reason, for everyone: it is not a question of permissions,
so no role, admin or break-glass session gets past it. The refusal is an audited denial
(``auth.access.deny`` with ``permission`` ``flow:<name>``) that survives the error response.
Put it under ``require``: an anonymous or unpermitted request is refused for that first.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from flask import abort, request

from console.auth.services import record_denial
from console.flows.services import Flow, FlowSwitchedOff, require_enabled
from console.unit_of_work import keep_on_error, request_session
from console.web_actor import current_actor

LOCKED = 423


def flow_required(flow: Flow) -> Callable[[Callable], Callable]:
    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args, **kwargs):
            session = request_session()
            try:
                require_enabled(session, flow)
            except FlowSwitchedOff as off:
                record_denial(session, actor=current_actor(), permission=f"flow:{flow.value}",
                              status=LOCKED, method=request.method, path=request.path)
                keep_on_error()
                abort(LOCKED, description=str(off))
            return view(*args, **kwargs)

        return wrapper

    return decorator
