import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from console.audit import Actor, AuditAction, Outcome, Target, record
from console.audit.models import AuditEvent
from console.audit.services import AuditTamperingRefused
from console.audit.verify import verify_chain
from console.db import utcnow
from console.deployment import Deployment


def test_events_form_a_chain_with_consecutive_sequence_numbers(db_session):
    actor = Actor.cli("alice")
    first = record(db_session, actor=actor, action=AuditAction.AUDIT_LOG_VIEW)
    second = record(db_session, actor=actor, action=AuditAction.AUDIT_LOG_EXPORT,
                    target=Target("export", "e-1"), outcome=Outcome.FAILURE)
    assert second.seq == first.seq + 1
    assert second.prev_hash == first.row_hash
    assert verify_chain(db_session).ok


def test_every_required_field_is_recorded(db_session):
    actor = Actor(Actor.cli("x").type, "bob", source_ip="192.0.2.7", request_id="req-12345678")
    event = record(db_session, actor=actor, action=AuditAction.AUDIT_LOG_EXPORT,
                   target=Target("export", "42"), outcome=Outcome.DENIED,
                   details={"reason": "no permission"})
    assert (event.actor_type, event.actor_id, event.action, event.target_type, event.target_id,
            event.outcome, event.source_ip, event.request_id) == (
        "cli", "bob", "audit.log.export", "export", "42", "denied", "192.0.2.7", "req-12345678")
    assert event.occurred_at.tzinfo is not None
    assert '"reason":"no permission"' in event.details


def test_changes_are_recorded_as_before_and_after(db_session):
    event = record(db_session, actor=Actor.cli("a"), action=AuditAction.AUDIT_LOG_VIEW,
                   before={"status": "active", "limit": 5}, after={"status": "blocked", "limit": 5})
    assert event.details == '{"changes":{"status":{"after":"blocked","before":"active"}}}'


def test_card_numbers_never_reach_audit_details(db_session):
    event = record(db_session, actor=Actor.cli("a"), action=AuditAction.AUDIT_LOG_VIEW,
                   details={"note": "customer read 4111 1111 1111 1111 aloud",
                            "pan": 5555555555554444})
    assert "4111111111111111" not in event.details and "1111 1111 1111" not in event.details
    assert "5555555555554444" not in event.details
    assert "411111******1111" in event.details


def test_a_failing_audit_write_rolls_the_action_back(db_session, monkeypatch):
    import console.audit.services as services

    def broken_hash(*_args, **_kwargs):
        raise RuntimeError("audit storage failed")

    savepoint = db_session.begin_nested()
    db_session.add(Deployment(id=1, environment="sandbox", initialised_at=utcnow()))
    monkeypatch.setattr(services, "row_hash", broken_hash)
    with pytest.raises(RuntimeError):
        record(db_session, actor=Actor.cli("a"), action=AuditAction.AUDIT_LOG_VIEW)
    savepoint.rollback()
    assert db_session.get(Deployment, 1) is None
    assert db_session.scalar(select(AuditEvent.seq)) is None


def test_the_application_cannot_update_or_delete_audit_events(db_session):
    event = record(db_session, actor=Actor.cli("a"), action=AuditAction.AUDIT_LOG_VIEW)
    db_session.flush()
    event.actor_id = "mallory"
    with pytest.raises(AuditTamperingRefused):
        db_session.flush()
    db_session.rollback()


@pytest.mark.parametrize("statement", [
    "UPDATE audit_event SET actor_id = 'mallory'",
    "DELETE FROM audit_event",
])
def test_the_database_refuses_audit_updates_and_deletes_even_in_raw_sql(db_session, statement):
    record(db_session, actor=Actor.cli("a"), action=AuditAction.AUDIT_LOG_VIEW)
    db_session.flush()
    savepoint = db_session.begin_nested()
    with pytest.raises(DBAPIError, match="append-only"):
        db_session.execute(text(statement))
    savepoint.rollback()


def test_truncate_is_refused_on_postgresql(db_session):
    if db_session.bind.dialect.name != "postgresql":
        pytest.skip("SQLite has no TRUNCATE")
    savepoint = db_session.begin_nested()
    with pytest.raises(DBAPIError, match="append-only"):
        db_session.execute(text("TRUNCATE audit_event"))
    savepoint.rollback()
