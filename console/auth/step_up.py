"""Step-up: actions that need a sign-in younger than ``STEP_UP_MAX_AGE_SECONDS``.

Put the decorator *under* ``@require(...)`` so that permission is checked first (someone who
may not act at all is refused, not asked to re-authenticate)::

    @bp.post("/cards/<int:card_id>/reveal")
    @require(Permission.REVEAL_CARD_DATA)
    @fresh_login_required
    def reveal(card_id): ...

    @require(Permission.KILL_SWITCHES)
    @step_up_required(SensitiveAction.KILL_SWITCHES)
    def toggle(flow): ...

``step_up_required`` asks for a fresh sign-in only where ``STEP_UP_ACTIONS`` lists the action
(default: every sensitive action in production, none in the sandbox).

When the sign-in is too old, the user is sent through the identity provider again (prompt=login,
max_age=0; the new ID token's auth_time is checked) or, in a break-glass session, through the
password + TOTP form. A POST cannot be replayed after that round trip: the user comes back to
the page they were on and repeats the action within the freshness window.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import wraps

from flask import current_app, url_for

from console.auth.access import return_to, send_to, server_session
from console.auth.sessions import now
from console.auth.settings import SensitiveAction


def login_age(at: dt.datetime | None = None) -> dt.timedelta | None:
    current = server_session()
    if current is None or not current.authenticated or current.auth_time is None:
        return None
    return (at or now()) - current.auth_time


def is_fresh(max_age_s: int | None = None) -> bool:
    limit = max_age_s or current_app.extensions["settings"].auth.step_up_max_age_seconds
    age = login_age()
    return age is not None and age <= dt.timedelta(seconds=limit)


def fresh_login_required(view: Callable | None = None, *, only_in_production: bool = False,
                         max_age_s: int | None = None):
    def decorator(inner: Callable) -> Callable:
        @wraps(inner)
        def wrapper(*args, **kwargs):
            settings = current_app.extensions["settings"]
            needed = settings.is_production or not only_in_production
            if needed and not is_fresh(max_age_s):
                send_to(current_app, url_for("auth.step_up", next=return_to()), status=401,
                        description="Confirm your identity again to do this.",
                        redirect_forms=True)
            return inner(*args, **kwargs)

        wrapper.requires_fresh_login = True  # type: ignore[attr-defined]
        return wrapper

    return decorator(view) if view is not None else decorator


def step_up_actions(settings) -> frozenset[SensitiveAction]:
    """The actions that need a fresh sign-in under ``settings``."""
    configured = settings.auth.step_up_actions
    if configured is None:
        return frozenset(SensitiveAction) if settings.is_production else frozenset()
    return configured


def step_up_required(action: SensitiveAction) -> Callable[[Callable], Callable]:
    """A fresh sign-in for ``action`` when ``STEP_UP_ACTIONS`` covers it (put it under
    ``@require``)."""

    def decorator(inner: Callable) -> Callable:
        fresh = fresh_login_required(inner)

        @wraps(inner)
        def wrapper(*args, **kwargs):
            if action in step_up_actions(current_app.extensions["settings"]):
                return fresh(*args, **kwargs)
            return inner(*args, **kwargs)

        wrapper.requires_fresh_login = True  # type: ignore[attr-defined]
        wrapper.sensitive_action = action  # type: ignore[attr-defined]
        return wrapper

    return decorator
