import datetime as dt
import threading

import pytest
from sqlalchemy import select

from console.db import Database, make_engine
from console.scheduler.leader import Leadership
from console.scheduler.models import JobStatus
from console.scheduler.registry import Job
from console.scheduler.runner import run_job, serve


@pytest.fixture
def database(db_factory):
    db = Database(make_engine(db_factory.fresh()))
    yield db
    db.dispose()


def _status(database, name):
    with database.transaction() as session:
        return session.scalar(select(JobStatus).where(JobStatus.name == name))


def test_a_successful_run_is_recorded(database):
    job = Job("test.ok", dt.timedelta(seconds=1), lambda s, a, now: "did 3 things", "ok job")
    assert run_job(database, job) == "success"
    status = _status(database, "test.ok")
    assert (status.last_outcome, status.last_summary, status.runs, status.failures) == (
        "success", "did 3 things", 1, 0)


def test_a_failing_job_is_recorded_and_rolled_back(database):
    def boom(session, actor, now):
        from console.flows.services import Flow, set_flow

        set_flow(session, actor, Flow.PROCESSING, enabled=False, reason="half-done work")
        raise RuntimeError("job broke")

    assert run_job(database, Job("test.boom", dt.timedelta(seconds=1), boom, "x")) == "failure"
    status = _status(database, "test.boom")
    assert status.last_outcome == "failure" and "job broke" in status.last_summary
    from console.flows.services import Flow, is_enabled

    with database.transaction() as session:
        assert is_enabled(session, Flow.PROCESSING)  # the job's partial work was rolled back


def test_only_one_instance_leads_and_a_standby_takes_over(database):
    first, second = Leadership(database.engine), Leadership(database.engine)
    assert first.try_acquire()
    assert not second.try_acquire()
    assert first.still_held()
    first.release()
    assert second.try_acquire()
    second.release()


def test_serve_runs_jobs_while_leading_and_stops_cleanly(database, monkeypatch):
    ran = threading.Event()

    def mark(session, actor, now):
        ran.set()
        return "ran"

    monkeypatch.setattr("console.scheduler.runner.JOBS",
                        (Job("test.mark", dt.timedelta(hours=1), mark, "x"),))
    stop = threading.Event()
    thread = threading.Thread(target=serve, args=(database, stop), kwargs={"poll_s": 0.05})
    thread.start()
    assert ran.wait(10)
    stop.set()
    thread.join(10)
    assert not thread.is_alive()
    successor = Leadership(database.engine)
    assert successor.try_acquire()  # leadership was released
    successor.release()


def test_concurrent_jobs_do_not_fail_each_other_with_lock_errors(database):
    # Two jobs that read then write at the same moment (the demo's scheduler did this at start).
    jobs = [Job(f"test.concurrent{n}", dt.timedelta(seconds=1), lambda s, a, now: "ok", "x")
            for n in range(2)]
    outcomes: list[str] = []

    def runner(job):
        for _ in range(15):
            outcomes.append(run_job(database, job))

    threads = [threading.Thread(target=runner, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert outcomes == ["success"] * 30
