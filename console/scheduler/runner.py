"""Runs the registered jobs with APScheduler while this instance is the leader."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from contextlib import nullcontext

from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask
from sqlalchemy import select

from console.audit import Actor
from console.db import Database, utcnow
from console.scheduler.leader import Leadership
from console.scheduler.models import JobStatus
from console.scheduler.registry import JOBS, Job

log = logging.getLogger(__name__)
RUNNER_ID = f"{socket.gethostname()}:{os.getpid()}"


def run_job(database: Database, job: Job, app: Flask | None = None) -> str:
    """One run in its own transaction; status is recorded in a second one so a failing job
    still leaves a trace. With ``app``, the job runs in its app context (its settings)."""
    started = utcnow()
    outcome, summary = "success", ""
    try:
        with app.app_context() if app is not None else nullcontext(), \
                database.transaction() as session:
            summary = job.run(session, Actor.system("scheduler"), started)
    except Exception as exc:  # every failure is recorded; the scheduler keeps going
        outcome, summary = "failure", f"{type(exc).__name__}: {exc}"[:500]
        log.exception("job %s failed", job.name)
    with database.transaction() as session:
        status = session.scalar(select(JobStatus).where(JobStatus.name == job.name)
                                .with_for_update())
        if status is None:
            status = JobStatus(name=job.name, runs=0, failures=0)
            session.add(status)
        status.last_started_at = started
        status.last_finished_at = utcnow()
        status.last_outcome = outcome
        status.last_summary = summary[:500]
        status.runs += 1
        status.failures += outcome == "failure"
        status.runner = RUNNER_ID
    return outcome


def serve(database: Database, stop: threading.Event, *, poll_s: float = 5.0,
          app: Flask | None = None) -> None:
    """Block until ``stop`` is set: wait for leadership, run jobs (in ``app``'s context, if
    given) while leading."""
    leadership = Leadership(database.engine)
    scheduler: BackgroundScheduler | None = None
    try:
        while not stop.is_set():
            if scheduler is None:
                if leadership.try_acquire():
                    log.info("scheduler is now the leader", extra={"runner": RUNNER_ID})
                    scheduler = BackgroundScheduler(timezone="UTC")
                    for job in JOBS:
                        scheduler.add_job(run_job, "interval", args=(database, job, app),
                                          id=job.name,
                                          seconds=job.every.total_seconds(), max_instances=1,
                                          coalesce=True, next_run_time=utcnow())
                    scheduler.start()
            elif not leadership.still_held():
                log.warning("scheduler lost leadership; standing by")
                scheduler.shutdown(wait=True)
                scheduler = None
            stop.wait(poll_s)
    finally:
        if scheduler is not None:
            scheduler.shutdown(wait=True)
        leadership.release()


def wait_for_signal(database: Database) -> None:  # pragma: no cover - process entry point
    import signal

    from flask import current_app

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    serve(database, stop, app=current_app._get_current_object())
    time.sleep(0)
