import pytest
from sqlalchemy import select

from console.audit import Actor, AuditAction, Outcome, Target, record
from console.audit.models import AuditEvent
from console.audit.queries import PAGE_SIZE


@pytest.fixture
def events(db_session):
    record(db_session, actor=Actor.cli("alice"), action=AuditAction.AUDIT_LOG_EXPORT,
           target=Target("export", "e-1"))
    record(db_session, actor=Actor.cli("bob"), action=AuditAction.FLOW_SWITCH_DISABLE,
           target=Target("flow", "decisioning"), outcome=Outcome.DENIED)
    db_session.flush()


def _views(db_session):
    return db_session.scalars(select(AuditEvent).where(
        AuditEvent.action == AuditAction.AUDIT_LOG_VIEW.value)).all()


def test_compliance_reads_the_log_and_the_read_is_itself_audited(as_compliance, events,
                                                                 db_session):
    page = as_compliance.get("/audit/")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert "audit.log.export" in body and "flows.switch.disable" in body
    (view,) = _views(db_session)
    assert view.actor_type == "user" and view.outcome == "success"


def test_filters_narrow_the_rows_and_htmx_gets_only_the_rows(as_compliance, events):
    response = as_compliance.get("/audit/?actor=bob&outcome=denied",
                                 headers={"HX-Request": "true", "HX-Target": "audit-rows"})
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in body
    assert "flows.switch.disable" in body and "audit.log.export" not in body
    none = as_compliance.get("/audit/?action=nothing.", headers={
        "HX-Request": "true", "HX-Target": "audit-rows"}).get_data(as_text=True)
    assert "No audit events match these filters." in none


@pytest.mark.parametrize("query", ["outcome=maybe", "since=yesterday", "before=abc",
                                   "actor=" + "x" * 201])
def test_bad_filters_are_a_clear_400(as_compliance, query):
    response = as_compliance.get(f"/audit/?{query}")
    assert response.status_code == 400


def test_older_events_are_paginated_by_sequence(as_compliance, db_session):
    for n in range(PAGE_SIZE + 3):
        record(db_session, actor=Actor.cli(f"u{n}"), action=AuditAction.AUDIT_LOG_EXPORT)
    db_session.flush()
    first = as_compliance.get("/audit/?action=audit.log.export").get_data(as_text=True)
    assert "Older events" in first
    last_seq = db_session.scalar(select(AuditEvent.seq).where(
        AuditEvent.actor_id == "u3"))
    older = as_compliance.get(f"/audit/?action=audit.log.export&before={last_seq}")
    assert "u2" in older.get_data(as_text=True)


def test_verify_reports_an_intact_chain_and_is_audited(as_compliance, events, db_session):
    fragment = as_compliance.get("/audit/verify", headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    assert "Chain intact" in fragment.get_data(as_text=True)
    verified = db_session.scalars(select(AuditEvent).where(
        AuditEvent.action == AuditAction.AUDIT_CHAIN_VERIFY.value)).all()
    assert len(verified) == 1 and verified[0].outcome == "success"


def test_viewers_and_operators_cannot_read_the_audit_log(as_viewer, as_operator):
    assert as_viewer.get("/audit/").status_code == 403
    assert as_operator.get("/audit/verify").status_code == 403


def test_the_date_filters_include_the_whole_until_day(as_compliance, db_session):
    import datetime as dt

    for day, name in [(1, "alpha"), (2, "bravo"), (3, "charlie")]:
        record(db_session, actor=Actor.cli(name), action=AuditAction.AUDIT_LOG_EXPORT,
               at=dt.datetime(2026, 11, day, 23, 59, tzinfo=dt.UTC))
    db_session.flush()
    body = as_compliance.get("/audit/?since=2026-11-02&until=2026-11-02").get_data(as_text=True)
    assert "bravo" in body and "alpha" not in body and "charlie" not in body
