"""Where authorization decisioning (issue #5) plugs into the ingress.

An authorization request (``type=authorization``, ``advice=false``) is stored and, in the same
transaction, handed to :func:`decide`. The answer is recorded on the message row before COMMIT,
so a duplicate delivery replays exactly the same answer and decisioning never runs twice for one
message. Until a decider is registered, every request gets the configured safe default
(``error``: decline) with reason ``decisioning not configured``.

The decisioning module registers itself once at import::

    from console.ingress import decisioning_port

    def decide(session, message, arrived) -> decisioning_port.Answer: ...
    decisioning_port.register(decide)

A decider owns its time budget (FINCI waits 3 s), counted from ``arrived`` (``time.monotonic()``
when the request reached the ingress, or None); it receives the ingress session and may write
its own records there (they commit with the message, or not at all). If it raises, the ingress
answers the safe default with reason ``decisioning failed`` and logs the exception type only.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from console.finci import contract
from console.finci.payload import WebhookMessage

log = logging.getLogger(__name__)

NOT_CONFIGURED = "decisioning not configured"
FAILED = "decisioning failed"
_REASON_MAX = 200
_UNAVAILABLE = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError,
                sa_exc.DisconnectionError)


@dataclass(frozen=True)
class Answer:
    approve: bool
    reason: str

    @property
    def status(self) -> str:
        """``success`` or ``error``: FINCI's words (B.4)."""
        return "success" if self.approve else "error"

    @property
    def body(self) -> bytes:
        return contract.authorization_answer_body(self.approve)

    @classmethod
    def safe_default(cls, status: str, reason: str) -> Answer:
        return cls(approve=status == "success", reason=reason)


Decider = Callable[[Session, WebhookMessage, float | None], Answer]

_lock = threading.Lock()
_decider: Decider | None = None


def register(decider: Decider) -> None:
    global _decider
    with _lock:
        _decider = decider


def registered() -> Decider | None:
    return _decider


@contextmanager
def using(decider: Decider | None) -> Iterator[None]:
    """Temporarily install ``decider`` (tests)."""
    global _decider
    previous = _decider
    with _lock:
        _decider = decider
    try:
        yield
    finally:
        with _lock:
            _decider = previous


def decide(session: Session, message: WebhookMessage, *, safe_default: str = "error",
           arrived: float | None = None) -> Answer:
    """The answer for one authorization request; raises only when the database is unavailable.

    An unavailable database propagates: the message is then not stored either, and FINCI gets a
    503 and retries, which is better than a stored message with an answer nobody recorded. Any
    other failure (a bug, a constraint error in the decider's own writes) rolls its SAVEPOINT
    back and becomes the safe default, recorded with the reason.
    """
    decider = _decider
    if decider is None:
        return Answer.safe_default(safe_default, NOT_CONFIGURED)
    try:
        # A SAVEPOINT, so a decider that fails half-way leaves none of its writes behind.
        with session.begin_nested():
            answer = decider(session, message, arrived)
    except _UNAVAILABLE:
        raise
    except Exception as exc:
        log.error("decisioning raised %s; answering the safe default", type(exc).__name__)
        return Answer.safe_default(safe_default, FAILED)
    if not isinstance(answer, Answer):
        log.error("decisioning returned %s, not an Answer", type(answer).__name__)
        return Answer.safe_default(safe_default, FAILED)
    return Answer(bool(answer.approve), str(answer.reason)[:_REASON_MAX])
