"""`flask --app wsgi checks list|run [ID] [--json]`."""

from sqlalchemy import select

from console.audit.models import AuditEvent
from console.checks.models import CheckResult
from console.checks.registry import CHECKS


def test_list_shows_every_check_never_run_at_first(cli):
    result, document = cli("checks", "list", "--json")
    assert result.exit_code == 0
    assert [row["id"] for row in document["checks"]] == [c.id for c in CHECKS]
    assert {row["status"] for row in document["checks"]} == {None}


def test_run_one_check_stores_it_audits_it_and_list_shows_it(cli, db_session):
    result, document = cli("checks", "run", "database", "--json")
    assert result.exit_code == 0, result.output
    assert document["checks"][0]["id"] == "database"
    assert document["checks"][0]["status"] == "ok"
    assert db_session.scalars(select(CheckResult.check_id)).all() == ["database"]
    event = db_session.scalars(select(AuditEvent).where(
        AuditEvent.action == "health.check.run")).one()
    assert event.actor_type == "cli"
    _result, listed = cli("checks", "list", "--json")
    row = next(r for r in listed["checks"] if r["id"] == "database")
    assert row["status"] == "ok" and row["last_run_at"] and row["next_run_at"]


def test_run_exits_1_when_a_check_fails(cli, db_session):
    from console.db import utcnow
    from tests.checks.test_probes import add_message

    add_message(db_session, utcnow(), status="dead")
    db_session.commit()
    result, document = cli("checks", "run", "dead_letters", "--json")
    assert result.exit_code == 1
    assert document["checks"][0]["status"] == "failing"


def test_run_of_an_unknown_check_is_a_usage_error(cli, db_session):
    result, _ = cli("checks", "run", "nope")
    assert result.exit_code == 2 and "unknown check" in result.output
    assert db_session.scalars(select(CheckResult)).all() == []


def test_run_without_an_id_runs_every_check(cli):
    result, document = cli("checks", "run", "--json")
    assert {row["id"] for row in document["checks"]} == {c.id for c in CHECKS}
    assert result.exit_code in (0, 1)
