"""The scheduler's checks.run job: due checks only, results stored, alerts sent after commit."""

import datetime as dt

from sqlalchemy import func, select

from console.checks.models import CheckResult
from console.checks.registry import CHECKS
from console.scheduler.registry import JOBS
from console.scheduler.runner import run_job

JOB = next(job for job in JOBS if job.name == "checks.run")


def _results(database):
    with database.transaction() as session:
        return dict(session.execute(select(CheckResult.check_id, func.count())
                                    .group_by(CheckResult.check_id)).all())


def test_the_job_runs_each_check_once_per_interval(app, test_database, monkeypatch):
    assert run_job(test_database, JOB, app) == "success"
    assert _results(test_database) == {check.id: 1 for check in CHECKS}
    assert run_job(test_database, JOB, app) == "success"  # nothing due yet
    assert _results(test_database) == {check.id: 1 for check in CHECKS}
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=2)
    monkeypatch.setattr("console.scheduler.runner.utcnow", lambda: later)
    run_job(test_database, JOB, app)
    counts = _results(test_database)
    assert counts["dead_letters"] == 2 and counts["audit_chain"] == 1  # hourly: not due
