"""The inventory's lifecycle rules, enforced in one place (console.keys.inventory)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from console.audit.models import AuditEvent
from console.audit.services import Actor
from console.keys import inventory
from console.keys.inventory import ALLOWED, InventoryError, State, TransitionRefused

ACTOR = Actor.cli("oncall")
AT = dt.datetime(2026, 12, 7, 10, 0, tzinfo=dt.UTC)


def _new(session, status: State = State.PENDING, environment="sandbox", fingerprint="fp1"):
    credential = inventory.create(session, ACTOR, kind="card_data_key", name="k-2026-12",
                                  environment=environment, fingerprint=fingerprint, at=AT,
                                  reason="generated", activate=status is State.ACTIVE)
    return credential


@pytest.mark.parametrize("start", list(State))
@pytest.mark.parametrize("to", [State.ACTIVE, State.RETIRING, State.RETIRED, State.REVOKED])
def test_every_transition_is_allowed_or_refused_by_the_one_table(db_session, start, to):
    credential = _new(db_session)
    credential.status = start.value  # put it in the starting state directly
    if start is State.RETIRING:
        credential.retire_after = AT + dt.timedelta(hours=1)
    db_session.flush()
    call = lambda: inventory.transition(  # noqa: E731
        db_session, ACTOR, credential, to, environment="sandbox", at=AT, reason="test",
        retire_after=AT + dt.timedelta(hours=2) if to is State.RETIRING else None)
    if to in ALLOWED[start]:
        call()
        assert credential.status == to.value
    else:
        with pytest.raises(TransitionRefused, match=f"is {start.value} and cannot become"):
            call()
        assert credential.status == start.value


def test_lifecycle_dates_history_and_audit_without_any_value(db_session):
    credential = _new(db_session)
    assert credential.status == "pending" and credential.activated_at is None
    inventory.activate(db_session, ACTOR, credential, environment="sandbox", at=AT,
                       reason="FINCI has the public key")
    later = AT + dt.timedelta(days=30)
    inventory.schedule_retire(db_session, ACTOR, credential, environment="sandbox", at=later,
                              retire_after=later + dt.timedelta(days=1), reason="rotating")
    assert inventory.retire_overdue(db_session, "sandbox", later) == 0
    assert inventory.retire_overdue(db_session, "sandbox", later + dt.timedelta(days=2)) == 1
    inventory.revoke(db_session, ACTOR, credential, environment="sandbox",
                     at=later + dt.timedelta(days=3), reason="compromised")
    assert credential.activated_at == AT and credential.retired_at and credential.revoked_at
    events = inventory.history(db_session, [credential.id])[credential.id]
    assert [(e.from_status, e.to_status) for e in events] == [
        (None, "pending"), ("pending", "active"), ("active", "retiring"),
        ("retiring", "retired"), ("retired", "revoked")]
    actions = db_session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)).all()
    assert actions == ["keys.credential.create", "keys.credential.activate",
                       "keys.credential.schedule_retire", "keys.credential.retire",
                       "keys.credential.revoke"]


def test_a_reason_and_a_future_deadline_are_required(db_session):
    credential = _new(db_session, State.ACTIVE)
    with pytest.raises(InventoryError, match="a reason is required"):
        inventory.revoke(db_session, ACTOR, credential, environment="sandbox", at=AT,
                         reason="  ")
    with pytest.raises(TransitionRefused, match="deadline in the future"):
        inventory.schedule_retire(db_session, ACTOR, credential, environment="sandbox", at=AT,
                                  retire_after=AT, reason="x")
    with pytest.raises(InventoryError, match="already in the inventory"):
        _new(db_session)


def test_a_credential_of_the_other_environment_is_refused_for_every_action(db_session):
    credential = _new(db_session, State.ACTIVE, environment="production")
    for verb in ("activate", "retire", "revoke"):
        with pytest.raises(inventory.EnvironmentRefused, match="tagged for production"):
            getattr(inventory, verb)(db_session, ACTOR, credential, environment="sandbox",
                                     at=AT, reason="x")
    assert credential.status == "active"
    assert inventory.listing(db_session, "sandbox") == []
    assert inventory.listing(db_session, "production") == [credential]


def test_fingerprint_names_a_value_without_revealing_it():
    assert inventory.fingerprint(b"value") == inventory.fingerprint(b"value")
    assert len(inventory.fingerprint(b"value")) == 16
    assert inventory.fingerprint(b"value") != inventory.fingerprint(b"other")
