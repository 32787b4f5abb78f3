"""Two real scheduler processes (`flask --app wsgi scheduler`) against one PostgreSQL database:
each job runs once per interval, not once per process; killing the leader with -9 hands the
jobs to the standby within one interval; SIGTERM stops cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import select

from console.db import Database, make_engine
from console.scheduler.models import JobStatus
from tests.pipeline.test_processes import database_url, pg_url  # noqa: F401 - fixtures
from tests.support.servers import ROOT, console_env

pytestmark = [pytest.mark.slow, pytest.mark.postgres_only]

JOB = "cards.send_actions"   # the shortest interval in the registry: 5 s
INTERVAL_S = 5.0
STANDBY_POLL_S = 5.0         # console.scheduler.runner.serve's default poll


def _start(env, log_path) -> subprocess.Popen:
    with open(log_path, "w") as log:
        return subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "scheduler"],
                                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)


def _status(database) -> JobStatus | None:
    with database.transaction() as session:
        status = session.scalar(select(JobStatus).where(JobStatus.name == JOB))
        if status is not None:
            session.expunge(status)
        return status


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_two_schedulers_run_each_job_once_and_the_standby_takes_over(
        pg_url, tmp_path, pan_scanner):  # noqa: F811 - the shared fixture
    env = console_env(pg_url, LOG_LEVEL="WARNING")
    database = Database(make_engine(pg_url))
    logs = [tmp_path / "scheduler-1.log", tmp_path / "scheduler-2.log"]
    processes = [_start(env, path) for path in logs]
    try:
        first = _wait(lambda: _status(database), 30, "the first run")
        started = time.monotonic()
        time.sleep(3 * INTERVAL_S)
        status = _status(database)
        elapsed = time.monotonic() - started
        runs = status.runs - first.runs
        # One leader: about one run per interval. Two leaders would make it about twice that.
        assert runs <= elapsed / INTERVAL_S + 1, (runs, elapsed)
        assert runs >= elapsed / INTERVAL_S - 1, (runs, elapsed)

        leader_pid = int(status.runner.rsplit(":", 1)[1])
        [leader] = [p for p in processes if p.pid == leader_pid]
        [standby] = [p for p in processes if p is not leader]
        killed_at_wall = time.time()
        os.kill(leader.pid, signal.SIGKILL)
        leader.wait(10)
        killed = time.monotonic()

        def taken_over():
            now = _status(database)
            return now if (now.runner.endswith(f":{standby.pid}")
                           and now.last_finished_at.timestamp() > killed_at_wall) else None

        _wait(taken_over, STANDBY_POLL_S + INTERVAL_S + 5, "the standby's first run")
        handover = time.monotonic() - killed
        # The standby polls for the lock every 5 s and runs every job at once when it leads.
        assert handover <= STANDBY_POLL_S + INTERVAL_S, handover

        standby.send_signal(signal.SIGTERM)
        assert standby.wait(20) == 0, logs[processes.index(standby)].read_text()[-2000:]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(10)
        database.dispose()
        for path in logs:
            pan_scanner.scan(path.read_text(), "scheduler")
