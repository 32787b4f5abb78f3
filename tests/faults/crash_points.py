"""Deterministic crash points inside processing, for real worker processes.

Loaded by a worker through PIPELINE_HANDLER_MODULES (beside tests.pipeline.process_handlers,
whose handler it leaves alone); not a test module, so pytest never imports it. With
FAULT_CRASH_AT set it ends the process with ``os._exit(137)`` (what SIGKILL leaves: no
cleanup, no rollback sent, the connection simply gone) the FAULT_CRASH_NTH-th time the worker
reaches that point:

- ``after_claim``: a batch's claims are committed, nothing of it is applied yet;
- ``after_effect``: a handler ran and its effect row reached the database, uncommitted;
- ``before_commit``: the whole apply (effect, status, attempt record) is about to commit;
- ``after_commit``: an apply committed; the rest of its batch is still claimed.

Nothing in ``console/`` knows about this: the points are hooked from outside, on the worker's
claim method and on SQLAlchemy's session events.
"""

from __future__ import annotations

import os

from sqlalchemy import event
from sqlalchemy.orm import Session

from console.pipeline import worker
from console.pipeline.models import MessageEffect, Outcome, ProcessingAttempt

POINTS = ("after_claim", "after_effect", "before_commit", "after_commit")
CRASH_EXIT = 137

_point = os.environ.get("FAULT_CRASH_AT", "")
_nth = int(os.environ.get("FAULT_CRASH_NTH", "1"))
_reached = 0
if _point and _point not in POINTS:
    raise RuntimeError(f"FAULT_CRASH_AT={_point!r} is not one of {', '.join(POINTS)}")


def _reach(point: str) -> None:
    global _reached
    if point != _point:
        return
    _reached += 1
    if _reached == _nth:
        os._exit(CRASH_EXIT)


_claim = worker.Worker.claim


def _claim_then_maybe_crash(self, limit=None):
    claims, report = _claim(self, limit)
    if claims:
        _reach("after_claim")
    return claims, report


worker.Worker.claim = _claim_then_maybe_crash  # type: ignore[method-assign]


def _applies(session: Session) -> bool:
    pending = list(session.new) + list(session.identity_map.values())
    return any(isinstance(item, ProcessingAttempt) and item.outcome == Outcome.APPLIED
               for item in pending)


@event.listens_for(Session, "after_flush")
def _after_flush(session, flush_context):
    # session.new still lists what this flush just INSERTed: each effect row counts once.
    if any(isinstance(item, MessageEffect) for item in session.new):
        _reach("after_effect")


@event.listens_for(Session, "before_commit")
def _before_commit(session):
    if _applies(session):
        session.info["fault_applies"] = True
        _reach("before_commit")


@event.listens_for(Session, "after_commit")
def _after_commit(session):
    if session.info.pop("fault_applies", False):
        _reach("after_commit")
