"""The hold expiry job: releases what no advice or clearing settled, and audits it."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from console.audit import Actor
from console.audit.models import AuditEvent
from console.cards.services import issue_funded_card
from console.ledger import services as ledger
from console.ledger.jobs import expire_holds
from console.ledger.models import HoldSource
from console.scheduler.registry import JOBS

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)


def test_the_job_is_registered_with_the_scheduler():
    assert "ledger.expire_holds" in {job.name for job in JOBS}


def test_expired_holds_are_released_and_audited(db_session):
    card = issue_funded_card(db_session, token_id="tok_job", balance=5_000)
    for name, expires in (("auth_a", NOW), ("auth_b", NOW + dt.timedelta(days=1))):
        ledger.place_hold(db_session, authorization_id=name, account_id=card.account_id,
                          card_id=card.id, amount=700, currency="EUR",
                          source=HoldSource.DECISION, expires_at=expires, now=NOW)
    summary = expire_holds(db_session, Actor.system("scheduler"), NOW + dt.timedelta(hours=1))
    assert summary == "released 1 expired holds"
    assert ledger.balance(db_session, card.account_id).held == 700
    event = db_session.scalars(select(AuditEvent)
                               .where(AuditEvent.action == "ledger.holds.expire")).one()
    assert '"EUR":700' in event.details.replace(" ", "")
    assert expire_holds(db_session, Actor.system("scheduler"),
                        NOW + dt.timedelta(hours=2)) == "nothing due"
