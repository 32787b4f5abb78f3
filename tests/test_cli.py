"""The foundation's commands: `db current`, `audit verify`, `scheduler jobs`, `demo seed`."""

from sqlalchemy import text

from console import migrate
from console.audit import Actor, AuditAction, record
from console.simulator.scenarios import run_book


def test_db_current_reports_the_head(cli):
    result, document = cli("db", "current", "--json")
    assert result.exit_code == 0
    assert document == {"current": migrate.head_revision(), "head": migrate.head_revision(),
                        "up_to_date": True}


def test_audit_verify_passes_on_an_intact_chain(cli, db_session):
    record(db_session, actor=Actor.cli("a"), action=AuditAction.AUDIT_LOG_VIEW)
    db_session.flush()
    result, document = cli("audit", "verify", "--json")
    assert result.exit_code == 0 and document["ok"] is True and document["rows"] >= 1


def test_audit_verify_exits_1_and_names_the_changed_row(cli, db_session):
    event = record(db_session, actor=Actor.cli("a"), action=AuditAction.AUDIT_LOG_VIEW)
    db_session.flush()
    if db_session.bind.dialect.name == "postgresql":
        db_session.execute(text("ALTER TABLE audit_event DISABLE TRIGGER USER"))
    else:
        db_session.execute(text("DROP TRIGGER audit_event_no_update"))
    db_session.execute(text("UPDATE audit_event SET actor_id = 'mallory' WHERE seq = :s"),
                       {"s": event.seq})
    result, _ = cli("audit", "verify")
    assert result.exit_code == 1
    assert f"BROKEN at event #{event.seq}" in result.output


def test_scheduler_jobs_lists_every_registered_job(cli):
    from console.scheduler.registry import JOBS

    result, document = cli("scheduler", "jobs", "--json")
    assert result.exit_code == 0
    assert [job["name"] for job in document["jobs"]] == [job.name for job in JOBS]
    assert {job["last_summary"] for job in document["jobs"]} == {None}  # never run


def test_scheduler_jobs_shows_what_each_job_last_said(cli, db_session):
    from console.scheduler.models import JobStatus

    db_session.add(JobStatus(name="audit.checkpoint", runs=1, failures=0, last_outcome="success",
                             last_summary="checkpoints off: AUDIT_EXPORT_SIGNING_KEY is not set"))
    db_session.flush()
    result, _ = cli("scheduler", "jobs")
    lines = result.output.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("audit.checkpoint"))
    assert "last: success" in lines[at]
    assert lines[at + 1].strip() == "checkpoints off: AUDIT_EXPORT_SIGNING_KEY is not set"
    _, document = cli("scheduler", "jobs", "--json")
    [job] = [job for job in document["jobs"] if job["name"] == "audit.checkpoint"]
    assert job["last_summary"].startswith("checkpoints off")


def test_demo_seed_is_idempotent_and_reports_json(cli):
    first, document = cli("demo", "seed", "--cards", "3", "--json")
    # The whole book a `--cards 3` run uses (its scripted cards among them).
    assert first.exit_code == 0 and document["created"] == len(run_book(1, 3))
    again, document = cli("demo", "seed", "--cards", "3", "--json")
    assert again.exit_code == 0 and document["created"] == 0


def test_demo_seed_refuses_bad_arguments_clearly(cli):
    result, _ = cli("demo", "seed", "--cards", "0")
    assert result.exit_code == 2 and "--cards" in result.output
