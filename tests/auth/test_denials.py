"""Anonymous API calls and writes: counted per minute, audited once in batches (issue 11)."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import func, select

from console.audit import Actor
from console.audit.models import AuditEvent
from console.auth import denials
from console.auth.models import AnonymousDenial
from console.db import utcnow
from console.security import csrf

SCHEDULER = Actor.system("scheduler")
JSON = {"Accept": "application/json"}


def _audit_rows(db_session, action="auth.anonymous_denials.record") -> list[dict]:
    rows = db_session.scalars(select(AuditEvent).where(AuditEvent.action == action)
                              .order_by(AuditEvent.seq))
    return [json.loads(row.details) for row in rows]


def _counted(db_session) -> int:
    db_session.expire_all()
    return db_session.scalar(select(func.coalesce(func.sum(AnonymousDenial.count), 0)))


def test_a_flood_of_anonymous_api_calls_and_writes_is_counted_not_audited_row_by_row(
        client, db_session):
    for _ in range(150):
        assert client.get("/users/", headers=JSON).status_code == 401
    # An anonymous session with a valid CSRF token (any sign-in form gives one) gets past CSRF.
    with client.session_transaction() as session:
        session[csrf.SESSION_KEY] = token = "anonymous-form-token"
    for _ in range(150):
        assert client.post("/flows/decisioning", data={"enabled": "false",
                                                       "csrf_token": token}).status_code == 401
    assert db_session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action.like("auth.access.deny%"))) == 0
    counted = _counted(db_session)
    assert counted == 300
    # One counter per (minute, source, permission, status), not a row per request.
    assert db_session.scalar(select(func.count()).select_from(AnonymousDenial)) <= 4

    audited = denials.audit_counts(db_session, SCHEDULER, utcnow())
    assert audited.denials == counted and audited.sources == 1
    [row] = _audit_rows(db_session)
    assert row["denials"] == counted and row["sources"] == 1
    assert sorted(row["by_reason"], key=lambda r: r["reason"]) == [
        {"reason": "401 kill_switches", "count": 150},
        {"reason": "401 manage_users", "count": 150}]
    # Nothing counted twice: the next run finds nothing new.
    assert denials.audit_counts(db_session, SCHEDULER, utcnow()).summary == (
        "no anonymous denials to audit")
    assert len(_audit_rows(db_session)) == 1


def test_denials_added_to_a_minute_already_audited_are_audited_once_more(client, db_session):
    client.get("/users/", headers=JSON)
    denials.audit_counts(db_session, SCHEDULER, utcnow())
    for _ in range(3):
        client.get("/users/", headers=JSON)
    denials.audit_counts(db_session, SCHEDULER, utcnow())
    assert [row["denials"] for row in _audit_rows(db_session)] == [1, 3]
    assert _counted(db_session) == 4


def _add(db_session, source, at, *, permission="view_panels", status=401, n=1,
         path="/"):
    for _ in range(n):
        denials.count(db_session, source_ip=source, permission=permission, status=status,
                      method="POST", path=path, at=at)
    db_session.flush()


def test_the_audit_row_names_the_top_sources_and_totals_all_of_them(db_session):
    now = utcnow()
    for i in range(denials.TOP + 5):
        _add(db_session, f"203.0.113.{i}", now, n=1 + i)
    _add(db_session, None, now, n=2)
    audited = denials.audit_counts(db_session, SCHEDULER, now)
    [row] = _audit_rows(db_session)
    assert audited.sources == row["sources"] == denials.TOP + 6
    assert row["denials"] == sum(range(1, denials.TOP + 6)) + 2
    assert len(row["top_sources"]) == denials.TOP
    assert row["top_sources"][0] == {"source_ip": f"203.0.113.{denials.TOP + 4}",
                                     "count": denials.TOP + 5}
    assert row["first_seen_at"] == row["last_seen_at"] or row["first_seen_at"] < row[
        "last_seen_at"]


def test_an_unknown_source_is_named_unknown(db_session):
    _add(db_session, None, utcnow())
    denials.audit_counts(db_session, SCHEDULER, utcnow())
    assert _audit_rows(db_session)[0]["top_sources"] == [{"source_ip": "unknown", "count": 1}]


def test_a_card_number_in_the_refused_path_is_masked_in_the_sample(db_session):
    _add(db_session, "203.0.113.1", utcnow(), path="/cards/4111111111111111")
    sample = db_session.scalar(select(AnonymousDenial.path))
    assert "4111111111111111" not in sample and sample.startswith("/cards/")


def test_a_run_audits_a_bounded_batch_and_leaves_the_rest_for_the_next(db_session):
    now = utcnow()
    for i in range(5):
        _add(db_session, f"203.0.113.{i}", now)
    first = denials.audit_counts(db_session, SCHEDULER, now, batch=3)
    assert (first.denials, first.more_left) == (3, True)
    assert "more left" in first.summary
    second = denials.audit_counts(db_session, SCHEDULER, now, batch=3)
    assert (second.denials, second.more_left) == (2, False)
    assert [row["denials"] for row in _audit_rows(db_session)] == [3, 2]


def test_old_counters_go_only_once_audited(db_session):
    now = utcnow()
    old = now - denials.KEEP - dt.timedelta(hours=1)
    _add(db_session, "203.0.113.1", old)
    # Not yet audited: kept, and audited by this run...
    assert denials.audit_counts(db_session, SCHEDULER, now).denials == 1
    # ...then deleted by the next (its audit row stays).
    denials.audit_counts(db_session, SCHEDULER, now)
    assert db_session.scalar(select(func.count()).select_from(AnonymousDenial)) == 0
    assert len(_audit_rows(db_session)) == 1


def test_the_scheduler_runs_the_audit_job(db_session):
    from console.scheduler.registry import JOBS

    [job] = [job for job in JOBS if job.name == "auth.anonymous_denials"]
    _add(db_session, "203.0.113.1", utcnow(), n=2)
    assert job.run(db_session, SCHEDULER, utcnow()) == (
        "audited 2 anonymous denials from 1 sources")
