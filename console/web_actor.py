"""The audit Actor for the current web request (the one place routes turn a request into one)."""

from __future__ import annotations

from flask import current_app, g, request

from console.audit.actions import ActorType
from console.audit.services import Actor


def current_actor() -> Actor:
    """Signed-in user when there is one (set by console.auth), else anonymous."""
    resolve = current_app.extensions.get("actor_resolver")
    actor_type, actor_id = resolve() if resolve else (ActorType.ANONYMOUS, "anonymous")
    return Actor(actor_type, actor_id, source_ip=request.remote_addr,
                 request_id=g.get("request_id"))
