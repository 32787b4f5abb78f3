"""The switch state fast path: every flow row in one query, served from memory for at most a
second.

The database stays the source of truth. Each process keeps, per engine, the rows it read and
when it started reading them; a read older than ``MAX_AGE_S`` is repeated. So another process or
instance sees a change within a second, and this process sees its own change at once:
``console.flows.services.set_flow`` drops the entry when it writes and again when its
transaction ends (a reader that started before the write cannot put the old rows back: the
entry's generation changed).

A session that changed a switch reads the database directly until it commits or rolls back,
so it sees its own uncommitted change and never shares it with other sessions.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

MAX_AGE_S = 1.0
# Set in ``Session.info`` by a session that wrote a switch row.
CHANGED = "flows.switch_changed"


@dataclass(frozen=True)
class _Entry:
    read_started: float
    rows: Any


def engine_of(session: Session):
    return session.get_bind().engine


class StateCache:
    def __init__(self, clock: Callable[[], float] = time.monotonic, max_age_s: float = MAX_AGE_S):
        self.clock = clock
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        # Per engine (one per process in production; tests and benchmarks make several).
        self._entries: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._generations: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def get(self, session: Session, load: Callable[[Session], Any]) -> Any:
        """The rows ``load(session)`` returns, at most ``max_age_s`` old."""
        if session.info.get(CHANGED):
            return load(session)
        key = engine_of(session)
        started = self.clock()
        with self._lock:
            entry = self._entries.get(key)
            generation = self._generations.get(key, 0)
        # ``started - read_started`` can only grow with a monotonic clock; a negative age would
        # mean a clock that went back, and is treated as stale too.
        if entry is not None and 0 <= started - entry.read_started < self.max_age_s:
            return entry.rows
        rows = load(session)
        with self._lock:
            if self._generations.get(key, 0) == generation:
                self._entries[key] = _Entry(started, rows)
        return rows

    def invalidate(self, session: Session) -> None:
        key = engine_of(session)
        with self._lock:
            self._entries.pop(key, None)
            self._generations[key] = self._generations.get(key, 0) + 1

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._generations.clear()


CACHE = StateCache()


def changed_in(session: Session) -> None:
    """``session`` wrote a switch row: drop this process's copy now and when it finishes."""
    session.info[CHANGED] = True
    CACHE.invalidate(session)


def _finished(session: Session) -> None:
    if session.info.pop(CHANGED, False):
        CACHE.invalidate(session)


sa_event.listen(Session, "after_commit", _finished)
sa_event.listen(Session, "after_rollback", _finished)
