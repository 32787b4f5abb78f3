"""The console's verify button checks what `flask audit verify` checks: the chain and the
signed checkpoints, so a chain rewritten with every hash recomputed is caught there too."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select

from console.audit import Actor, AuditAction, record
from console.audit.checkpoints import sign_newest
from console.audit.models import AuditEvent
from console.audit.settings import AuditSettings
from tests.audit.conftest import keyed_settings, lift_guards, rewrite_whole_chain

NOW = dt.datetime(2026, 11, 27, 12, tzinfo=dt.UTC)


settings = pytest.fixture(keyed_settings, name="settings")


@pytest.fixture
def checkpointed(db_session, signing_key):
    for n in range(3):
        record(db_session, actor=Actor.cli(f"user{n}"), action=AuditAction.AUDIT_LOG_VIEW)
    assert sign_newest(db_session, signing_key, NOW).startswith("signed checkpoint")
    db_session.flush()


def _verify(client) -> str:
    response = client.get("/audit/verify", headers={"HX-Request": "true"})
    assert response.status_code == 200
    return response.get_data(as_text=True)


def _last_verify(db_session) -> AuditEvent:
    return db_session.scalars(select(AuditEvent).where(
        AuditEvent.action == AuditAction.AUDIT_CHAIN_VERIFY.value)
        .order_by(AuditEvent.seq.desc())).first()


def test_an_honest_log_shows_its_verified_checkpoints(as_compliance, checkpointed, db_session):
    page = _verify(as_compliance)
    assert "Chain intact" in page
    assert "Signed checkpoints: 1 verified" in page
    verified = _last_verify(db_session)
    assert verified.outcome == "success"
    assert json.loads(verified.details)["checkpoints"]["status"] == "verified"


def test_a_rewritten_chain_fails_on_the_page_and_the_failure_is_audited(
        as_compliance, checkpointed, db_session):
    lift_guards(db_session)
    rewrite_whole_chain(db_session)
    page = _verify(as_compliance)
    assert "Chain broken at event #" in page
    assert "the chain was rewritten" in page
    assert _last_verify(db_session).outcome == "failure"


def test_without_a_key_the_page_says_checkpoints_were_not_checked(as_compliance, app,
                                                                 checkpointed):
    settings = app.extensions["settings"]
    app.extensions["settings"] = settings.replace(audit=AuditSettings())
    assert "Signed checkpoints not checked: no signing key is configured (1 stored)" in (
        _verify(as_compliance))


def test_old_events_no_checkpoint_covers_are_shown_as_a_warning(as_compliance, checkpointed,
                                                                db_session):
    record(db_session, actor=Actor.cli("late"), action=AuditAction.AUDIT_LOG_VIEW,
           at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=3))
    db_session.flush()
    page = _verify(as_compliance)
    assert "Chain intact" in page
    assert "flash--warning" in page and "not covered by a signed checkpoint" in page
