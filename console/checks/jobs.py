"""The scheduler's ``checks.run`` job: every 30 s, run the checks whose interval has passed.

It runs in the scheduler's app context (its settings) inside the job's transaction; the
notifications it queues go out once that transaction commits.
"""

from __future__ import annotations

import datetime as dt

from flask import current_app
from sqlalchemy.orm import Session

from console.checks.services import due, run_checks


def run_due(session: Session, now: dt.datetime) -> str:
    settings = current_app.extensions["settings"]
    return run_checks(session, settings, now, due(session, now)).summary()
