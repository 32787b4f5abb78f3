"""The scheduler's checks.run job: due checks only, results stored, alerts sent after commit."""

import datetime as dt

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

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


def test_an_unreachable_database_still_alerts_and_then_recovers(app, test_database, tmp_path,
                                                                monkeypatch):
    from console.checks import jobs
    from console.checks.settings import ChecksSettings
    from console.db import Database, make_engine

    sent = []
    monkeypatch.setattr(jobs, "OUTAGE", jobs.Outage())
    monkeypatch.setattr(jobs.notifiers, "deliver",
                        lambda notes, policy, env: sent.extend(n.kind.value for n in notes))
    app.extensions["settings"] = app.extensions["settings"].replace(
        checks=ChecksSettings(failures_before_alert=2))
    gone = Database(make_engine(f"sqlite:///{tmp_path}/no/such/dir/db.sqlite3"))
    for _ in range(3):
        # The runner cannot record the job's status either; APScheduler logs that and goes on.
        with pytest.raises(OperationalError):
            run_job(gone, JOB, app)
    assert sent == ["failing"]  # once, at the threshold
    assert run_job(test_database, JOB, app) == "success"
    assert sent == ["failing", "recovered"]
    gone.dispose()
