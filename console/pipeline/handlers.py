"""The handler registry: one handler per message type; other modules plug theirs in.

A handler applies one stored message's business effect::

    from console.pipeline import handlers

    @handlers.register("presentment", name="transactions.post_presentment")
    def post_presentment(ctx: handlers.Context) -> handlers.Result | None:
        ...  # ctx.session, ctx.message (parsed, card numbers masked), ctx.stored, ctx.actor

Contract:

- Runs inside the worker's transaction; flush, never commit. The worker commits the effects,
  the effect-ledger row and the "processed" mark together, or rolls all of them back.
- Idempotent: the effect ledger (``message_effect``, one row per message) already stops the
  same message being applied twice, but a handler's own writes should also be keyed by
  UNIQUE constraints (e.g. one posting per presentment id) so different messages describing
  the same business event converge.
- Raise any exception to fail this attempt (retried with backoff, dead-lettered after the
  maximum attempts); raise :class:`DeadLetter` when retrying can never help.
- Return a short ``Result.summary`` (no card data) for the console, or ``None``.

Known types without a handler are processed as a recorded no-op (outcome ``no_handler``) and
can be replayed once a handler exists; unknown types are parked for review.

Registration happens at import. The worker imports every module in ``HANDLER_MODULES`` that
exists (add yours there, one line), plus ``PIPELINE_HANDLER_MODULES`` in development and tests.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy.orm import Session

from console.audit import Actor
from console.finci.payload import WebhookMessage
from console.ingress.models import StoredMessage

# Modules that register handlers for the worker (imported if present).
HANDLER_MODULES: tuple[str, ...] = (
    "console.decisioning.handlers",
    "console.transactions.handlers",
    "console.cards.handlers",
)


class DeadLetter(Exception):
    """Retrying cannot help (e.g. a reference to something that will never exist)."""


@dataclass(frozen=True)
class Context:
    session: Session
    message: WebhookMessage
    stored: StoredMessage
    actor: Actor
    attempt: int


@dataclass(frozen=True)
class Result:
    summary: str | None = None


Handler = Callable[[Context], Result | None]


@dataclass(frozen=True)
class Registration:
    message_type: str
    name: str
    handler: Handler


_lock = threading.Lock()
_registry: dict[str, Registration] = {}


def register(message_type: str, *, name: str | None = None) -> Callable[[Handler], Handler]:
    """Decorator: make ``handler`` the one handler for ``message_type``."""
    def decorator(handler: Handler) -> Handler:
        add(message_type, handler, name=name)
        return handler

    return decorator


def add(message_type: str, handler: Handler, *, name: str | None = None) -> Registration:
    label = name or f"{handler.__module__}.{getattr(handler, '__qualname__', 'handler')}"
    registration = Registration(str(message_type), label[:100], handler)
    with _lock:
        existing = _registry.get(registration.message_type)
        if existing is not None and existing.handler is not handler:
            raise ValueError(f"a handler for {message_type!r} is already registered "
                             f"({existing.name})")
        _registry[registration.message_type] = registration
    return registration


def remove(message_type: str) -> None:
    with _lock:
        _registry.pop(str(message_type), None)


def handler_for(message_type: str) -> Registration | None:
    return _registry.get(message_type)


def registered_types() -> frozenset[str]:
    return frozenset(_registry)


@contextmanager
def using(message_type: str, handler: Handler, *, name: str | None = None) -> Iterator[None]:
    """Temporarily replace the handler for ``message_type`` (tests)."""
    with _lock:
        previous = _registry.pop(str(message_type), None)
    add(message_type, handler, name=name)
    try:
        yield
    finally:
        with _lock:
            _registry.pop(str(message_type), None)
            if previous is not None:
                _registry[previous.message_type] = previous


@contextmanager
def isolated() -> Iterator[None]:
    """An empty registry for the duration (tests), restored afterwards."""
    with _lock:
        saved = dict(_registry)
        _registry.clear()
    try:
        yield
    finally:
        with _lock:
            _registry.clear()
            _registry.update(saved)


def load(extra_modules: Iterable[str] = ()) -> list[str]:
    """Import the modules that register handlers; returns those imported."""
    loaded = []
    for module in (*HANDLER_MODULES, *extra_modules):
        if module in extra_modules or _exists(module):
            importlib.import_module(module)
            loaded.append(module)
    return loaded


def _exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False
