"""Authorizations that never clear expire; orphan presentments post after the grace period."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from console.audit import Actor
from console.audit.models import AuditEvent
from console.ledger import services as ledger
from console.ledger.models import Hold
from console.transactions.expiry import expire_authorizations, retry_repairable
from console.transactions.models import TransactionPosting
from console.transactions.settings import LifecycleSettings
from tests.transactions.support import T0

SCHEDULER = Actor.system("scheduler")
SETTINGS = LifecycleSettings(hold_expiry_days=7, orphan_grace_hours=72)


def expire(session, at):
    report = expire_authorizations(session, SCHEDULER, SETTINGS, at)
    session.commit()
    return report


def test_an_approved_authorization_expires_after_the_window_and_frees_its_hold(
        driver, bodies, card, db_session):
    driver.run(bodies.request("auth_old", 3_000, at=T0), bodies.advice("auth_old", 3_000, at=T0))
    assert expire(db_session, T0 + dt.timedelta(days=6)).expired == []
    transaction = driver.transaction("auth_old")
    report = expire(db_session, T0 + dt.timedelta(days=7, seconds=1))
    assert report.expired == [transaction.id]
    assert driver.transaction("auth_old").state == "expired"
    hold = db_session.scalar(select(Hold).where(Hold.authorization_id == "auth_old"))
    assert (hold.status, hold.release_reason) == ("released", "expired")
    assert ledger.balance(db_session, card.account_id).held == 0
    assert db_session.scalar(select(AuditEvent).where(
        AuditEvent.action == "transactions.authorizations.expire")) is not None
    assert expire(db_session, T0 + dt.timedelta(days=8)).summary == "nothing due"


def test_a_hold_released_by_the_ledger_expiry_marks_its_transaction_expired(
        driver, bodies, card, db_session):
    driver.run(bodies.request("auth_ttl", 1_000, at=T0), bodies.advice("auth_ttl", 1_000, at=T0))
    hold = db_session.scalar(select(Hold).where(Hold.authorization_id == "auth_ttl"))
    ledger.release_expired_holds(db_session, hold.expires_at + dt.timedelta(seconds=1))
    db_session.commit()
    expire(db_session, T0 + dt.timedelta(days=1))  # well inside our own window
    assert driver.transaction("auth_ttl").state == "expired"


def test_a_presentment_after_expiry_still_posts(driver, bodies, card, db_session):
    driver.run(bodies.request("auth_late", 2_000, at=T0),
               bodies.advice("auth_late", 2_000, at=T0))
    expire(db_session, T0 + dt.timedelta(days=8))
    driver.run(bodies.presentment("auth_late", 2_000, at=T0 + dt.timedelta(days=9)))
    transaction = driver.transaction("auth_late")
    assert (transaction.state, transaction.expired_at is not None) == ("posted", True)
    balance = ledger.balance(db_session, card.account_id)
    assert (balance.posted, balance.held) == (98_000, 0)


def test_an_orphan_presentment_posts_without_its_authorization_after_the_grace_period(
        driver, bodies, card, db_session):
    driver.run(bodies.presentment("auth_never", 1_500, id_="pres_orphan"))
    transaction = driver.transaction("auth_never")
    created = db_session.scalar(select(TransactionPosting.created_at)
                                .where(TransactionPosting.finci_id == "pres_orphan"))
    assert expire(db_session, created + dt.timedelta(hours=71)).orphans_posted == []
    report = expire(db_session, created + dt.timedelta(hours=72, seconds=1))
    assert report.orphans_posted == [transaction.id]
    posting = db_session.scalar(select(TransactionPosting)
                                .where(TransactionPosting.finci_id == "pres_orphan"))
    assert (posting.status, posting.detail) == (
        "posted", "posted without its authorization (grace period over)")
    assert driver.transaction("auth_never").state == "posted"
    assert ledger.balance(db_session, card.account_id).posted == 98_500


def test_the_retry_job_leaves_unrepaired_failures_alone(driver, bodies, db_session):
    from tests.transactions.support import Bodies, new_id

    driver.run(Bodies(new_id("tok")).presentment(None, 100))
    assert retry_repairable(db_session, SCHEDULER, SETTINGS, T0) == "nothing to retry"
    assert db_session.scalar(select(AuditEvent).where(
        AuditEvent.action == "transactions.posting.retry")) is None
