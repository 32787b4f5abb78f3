"""The scheduler's ``checks.run`` job: every 30 s, run the checks whose interval has passed.

It runs in the scheduler's app context (its settings) inside the job's transaction; the
notifications it queues go out once that transaction commits.

When the database itself cannot be reached, nothing can be stored or committed, so the
``database`` check's alert would never leave. ``OUTAGE`` counts those runs in this process
(only the leader runs the job) and notifies directly: failing after the same threshold,
recovered when the database answers again.
"""

from __future__ import annotations

import datetime as dt
import threading

from flask import current_app
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from console.checks import notifiers
from console.checks.alerts import Kind, Notification
from console.checks.registry import BY_ID
from console.checks.services import due, run_checks
from console.settings import Settings


class Outage:
    """Consecutive runs that could not reach the database, in this scheduler process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.failures = 0
        self.notified = False

    def _note(self, kind: Kind, detail: str, now: dt.datetime) -> Notification:
        return Notification("database", BY_ID["database"].title, kind, detail, now,
                            self.failures)

    def failed(self, settings: Settings, now: dt.datetime) -> None:
        with self._lock:
            self.failures += 1
            if self.notified or self.failures < settings.checks.failures_before_alert:
                return
            self.notified = True
            note = self._note(Kind.FAILING, "the scheduler cannot reach the database", now)
        notifiers.deliver([note], settings.checks, settings.environment.value)

    def answered(self, settings: Settings, now: dt.datetime) -> None:
        with self._lock:
            was_notified, self.failures, self.notified = self.notified, 0, False
        if was_notified:
            notifiers.deliver([self._note(Kind.RECOVERED, "the database answers again", now)],
                              settings.checks, settings.environment.value)


OUTAGE = Outage()


def run_due(session: Session, now: dt.datetime) -> str:
    settings = current_app.extensions["settings"]
    try:
        checks = due(session, now)
    except OperationalError:  # cannot connect: nothing here can be stored; alert directly
        OUTAGE.failed(settings, now)
        raise
    OUTAGE.answered(settings, now)
    return run_checks(session, settings, now, checks).summary()
