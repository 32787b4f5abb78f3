"""The time budget of one decision, and the guard that makes the database respect it.

FINCI declines on its own after 3 s; we answer well before that (``DecisioningSettings.budget_s``,
1.5 s by default). Two mechanisms keep the promise even when the database stalls:

1. A deadline checked between steps (``Budget.check``): a decision that is out of time stops
   and answers the safe default instead of approving late.
2. ``StatementDeadline``: while active on a connection, every statement runs under a timeout
   derived from the time left, so a single slow query or lock wait cannot overrun.
   - PostgreSQL: ``set_config('statement_timeout', <ms>, true)`` (= ``SET LOCAL``) before a
     statement whenever the timeout in force could outlast the deadline by more than ``slack``;
     on the fast path that is once per decision. The server cancels the statement
     (``QueryCanceled``), the caller rolls back to its SAVEPOINT and answers the default.
   - SQLite: sqlite3's progress handler interrupts a running statement past the deadline, and
     ``PRAGMA busy_timeout`` bounds waiting for another writer's lock (the progress handler is
     not called while SQLite sleeps on a lock).
   A statement that would start after the deadline is not sent at all (``BudgetExceeded``).

The budget keeps a reserve at the end (``reserve_s``) for writing the record of a fallback
answer, so "out of time" is still recorded, and still answered in time.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import math
import time
from typing import Protocol

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from console.db import utcnow


class Clock(Protocol):
    def now(self) -> dt.datetime: ...

    def monotonic(self) -> float: ...


class SystemClock:
    @staticmethod
    def now() -> dt.datetime:
        return utcnow()

    @staticmethod
    def monotonic() -> float:
        return time.monotonic()


SYSTEM_CLOCK = SystemClock()


class BudgetExceeded(Exception):
    """Out of time: the decision stops here and the safe default is answered."""

    def __init__(self, stage: str):
        self.stage = stage
        super().__init__(f"decision budget exceeded in stage {stage!r}")


# See Budget.fallback_deadline.
FALLBACK_MIN_WINDOW_S = 0.05
FALLBACK_HARD_STOP_S = 2.5


class Budget:
    """``deadline``: the answer must be out; ``decide_by``: rules and writes must be done."""

    def __init__(self, seconds: float, clock: Clock = SYSTEM_CLOCK, *,
                 started: float | None = None, reserve_s: float | None = None):
        self.clock = clock
        self.seconds = seconds
        self.started = clock.monotonic() if started is None else started
        self.deadline = self.started + seconds
        reserve = min(0.25, seconds * 0.2) if reserve_s is None else reserve_s
        self.decide_by = self.deadline - reserve

    def fallback_deadline(self) -> float:
        """Until when the record of a fallback answer may be written.

        Normally the end of the budget (the reserve is for this). If the process itself was
        stalled past it, a short window still lets "out of time" be recorded, never closer to
        FINCI's 3 s than ``FALLBACK_HARD_STOP_S``.
        """
        window_end = max(self.deadline, self.clock.monotonic() + FALLBACK_MIN_WINDOW_S)
        return min(window_end, self.started + FALLBACK_HARD_STOP_S)

    def elapsed_ms(self) -> float:
        return (self.clock.monotonic() - self.started) * 1000

    def expired(self) -> bool:
        return self.clock.monotonic() >= self.decide_by

    def check(self, stage: str) -> None:
        if self.expired():
            raise BudgetExceeded(stage)


class StageTimer:
    """Milliseconds per named stage: ``start("card")`` ends the previous stage."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK, *, first: str | None = None,
                 started: float | None = None):
        """``first``: a stage already running since ``started`` (e.g. the ingress's part)."""
        self.clock = clock
        self.stages: dict[str, float] = {}
        self.current: str | None = first
        self._mark = clock.monotonic() if started is None else started

    def start(self, name: str) -> None:
        now = self.clock.monotonic()
        if self.current is not None:
            self.stages[self.current] = round(
                self.stages.get(self.current, 0.0) + (now - self._mark) * 1000, 3)
        self.current, self._mark = name, now

    def stop(self) -> dict[str, float]:
        self.start("")
        self.current = None
        self.stages.pop("", None)
        return dict(self.stages)


# --- the database side ------------------------------------------------------------------------

_ACTIVE: contextvars.ContextVar[StatementDeadline | None] = contextvars.ContextVar(
    "statement_deadline", default=None)
# Transaction control must always go through: rolling back to a SAVEPOINT is how we recover.
_UNGUARDED = ("SAVEPOINT", "RELEASE", "ROLLBACK", "COMMIT", "BEGIN")
DEFAULT_SLACK_S = 0.01
SAVEPOINT = "decisioning"
# Back to the session's own value for the rest of the caller's transaction.
_RESTORE_TIMEOUT = "SET LOCAL statement_timeout TO DEFAULT"


class StatementDeadline:
    """Bound every statement on ``connection`` by ``deadline`` (monotonic) while active."""

    def __init__(self, connection: Connection, deadline: float, clock: Clock = SYSTEM_CLOCK,
                 *, slack_s: float = DEFAULT_SLACK_S):
        self.connection = connection
        self.deadline = deadline
        self.clock = clock
        self.slack_s = slack_s
        self.dialect = connection.dialect.name
        self.statements = 0
        self.timeouts_set = 0
        # When the timeout in force was set and its length: a statement starting at t may run
        # until t + armed_s. None: unknown (never set, or rolled back with a SAVEPOINT).
        self._armed_s: float | None = None
        self._token: contextvars.Token | None = None
        self._raw = None
        self._previous_busy_ms: int | None = None
        # PostgreSQL: a SET LOCAL of ours is in force and must be undone before we hand back.
        self._timeout_changed = False

    # -- lifecycle --

    def __enter__(self) -> StatementDeadline:
        if self.dialect == "sqlite":
            self._raw = self.connection.connection.dbapi_connection
            self._previous_busy_ms = self._raw.execute("PRAGMA busy_timeout").fetchone()[0]
            # Called every 200 SQLite VM instructions: a non-zero answer interrupts the statement.
            self._raw.set_progress_handler(self._past_deadline, 200)
        self._token = _ACTIVE.set(self)
        return self

    def __exit__(self, *_exc) -> None:
        if self._token is not None:
            _ACTIVE.reset(self._token)
            self._token = None
        if self.dialect == "sqlite" and self._raw is not None:
            self._raw.set_progress_handler(None, 0)
            if self._armed_s is not None and self._previous_busy_ms is not None:
                self._raw.execute(f"PRAGMA busy_timeout = {int(self._previous_busy_ms)}")
        elif self.dialect == "postgresql" and self._timeout_changed:
            self.connection.exec_driver_sql(_RESTORE_TIMEOUT)

    # -- a SAVEPOINT of our own, sharing round trips with the timeout on PostgreSQL --
    #
    # SQLAlchemy's begin_nested() would cost a round trip for SAVEPOINT and one for RELEASE, on
    # top of one to set the statement timeout and one to restore it. PostgreSQL's simple query
    # protocol takes several statements at once (psycopg uses it for a statement without
    # parameters), so "SAVEPOINT + set timeout" and "RELEASE + restore timeout" are one each.
    # The SQL is fixed text plus an integer, never input.

    def open_savepoint(self) -> None:
        if self.dialect == "postgresql":
            ms = self._timeout_ms()
            self.connection.exec_driver_sql(
                f"SAVEPOINT {SAVEPOINT}; "
                f"SELECT set_config('statement_timeout', '{ms}', true)")
            self._armed(ms)
        else:
            self.connection.exec_driver_sql(f"SAVEPOINT {SAVEPOINT}")

    def release_savepoint(self) -> None:
        if self.dialect == "postgresql" and self._timeout_changed:
            self.connection.exec_driver_sql(f"RELEASE SAVEPOINT {SAVEPOINT}; {_RESTORE_TIMEOUT}")
            self._timeout_changed = False
            self._armed_s = None
        else:
            self.connection.exec_driver_sql(f"RELEASE SAVEPOINT {SAVEPOINT}")

    def rollback_savepoint(self) -> None:
        """Undo everything since ``open_savepoint`` (the SAVEPOINT stays open for reuse)."""
        self.connection.exec_driver_sql(f"ROLLBACK TO SAVEPOINT {SAVEPOINT}")
        # A timeout set inside the SAVEPOINT was rolled back with it.
        self._armed_s = None
        self._timeout_changed = False

    def move_deadline(self, deadline: float) -> None:
        self.deadline = deadline
        self._armed_s = None

    # -- per statement --

    def _past_deadline(self) -> int:
        return 1 if self.clock.monotonic() > self.deadline + self.slack_s else 0

    def before_statement(self, cursor, statement: str) -> None:
        if statement.lstrip()[:9].upper().startswith(_UNGUARDED):
            return
        now = self.clock.monotonic()
        remaining = self.deadline - now
        if remaining <= 0:
            raise BudgetExceeded("database")
        self.statements += 1
        armed = self._armed_s
        if armed is not None and now + armed <= self.deadline + self.slack_s:
            return
        ms = self._timeout_ms(now)
        if self.dialect == "postgresql":
            cursor.execute("SELECT set_config('statement_timeout', %s, true)", (str(ms),))
        elif self.dialect == "sqlite":
            cursor.execute(f"PRAGMA busy_timeout = {ms}")
        self._armed(ms)

    def _timeout_ms(self, now: float | None = None) -> int:
        now = self.clock.monotonic() if now is None else now
        return max(1, math.floor((self.deadline - now) * 1000))

    def _armed(self, ms: int) -> None:
        self._armed_s = ms / 1000
        self._timeout_changed = True
        self.timeouts_set += 1


@event.listens_for(Engine, "before_cursor_execute")
def _guard_statement(conn, cursor, statement, _parameters, _context, _executemany):
    guard = _ACTIVE.get()
    if guard is not None and guard.connection is conn:
        guard.before_statement(cursor, statement)


def is_timeout(error: BaseException) -> bool:
    """True for a statement the database cancelled on our deadline (PostgreSQL or SQLite)."""
    original = getattr(error, "orig", None)
    if original is None:
        return False
    name = type(original).__name__
    return name == "QueryCanceled" or (name == "OperationalError"
                                       and "interrupted" in str(original))
