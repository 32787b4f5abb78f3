"""Ledger posting switched off (issue 12): presentments and refunds are stored and parked, the
rest of processing goes on, and the scheduler posts what was parked, once, when it is back on.
Parked by the switch is kept apart from parked waiting for the authorization (orphans)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import func, select

from console.audit import Actor
from console.audit.models import AuditEvent
from console.flows.services import Flow, set_flow
from console.ledger import services as ledger
from console.ledger.models import Hold, LedgerJournal
from console.transactions.expiry import expire_authorizations, post_switched_off
from console.transactions.models import TransactionPosting
from console.transactions.services import SWITCHED_OFF
from console.transactions.settings import LifecycleSettings

SCHEDULER = Actor.system("scheduler")
SETTINGS = LifecycleSettings(orphan_grace_hours=72)


def switch(session, enabled: bool) -> None:
    set_flow(session, Actor.system("oncall"), Flow.LEDGER_POSTING, enabled=enabled,
             reason="INC-21 ledger reconciliation")
    session.commit()


def posting(session, finci_id) -> TransactionPosting:
    session.expire_all()
    return session.scalar(select(TransactionPosting).where(TransactionPosting.finci_id == finci_id))


def journals(session) -> int:
    return session.scalar(select(func.count()).select_from(LedgerJournal)
                          .where(LedgerJournal.kind.in_(["presentment", "refund"])))


def resume(session, at=None):
    report = post_switched_off(session, SCHEDULER, SETTINGS, at or dt.datetime.now(dt.UTC))
    session.commit()
    return report


def audits(session, action) -> list[AuditEvent]:
    return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def test_switched_off_postings_park_then_post_once_when_back_on(driver, bodies, card,
                                                                db_session):
    driver.run(bodies.request("auth_off", 3_000), bodies.advice("auth_off", 3_000))
    switch(db_session, False)
    driver.run(bodies.presentment("auth_off", 3_000, id_="pres_off"),
               bodies.refund(None, 500, id_="ref_off"))
    for finci_id in ("pres_off", "ref_off"):
        parked = posting(db_session, finci_id)
        assert (parked.status, parked.reason, parked.detail, parked.journal_id) == (
            "parked", None, SWITCHED_OFF, None)
    assert journals(db_session) == 0
    # The rest of processing went on: the timeline shows the clearing, the hold is untouched
    # (neither converted by a presentment that was not posted, nor released).
    assert driver.transaction("auth_off").state == "cleared"
    hold = db_session.scalar(select(Hold).where(Hold.authorization_id == "auth_off"))
    assert (hold.status, hold.amount) == ("open", 3_000)
    balance = ledger.balance(db_session, card.account_id)
    assert (balance.posted, balance.held) == (100_000, 3_000)
    assert resume(db_session).summary == "ledger posting switched off: nothing posted"

    switch(db_session, True)
    report = resume(db_session)
    assert report.posted == 2 and len(report.settled) == 2
    assert [posting(db_session, f).status for f in ("pres_off", "ref_off")] == ["posted"] * 2
    assert posting(db_session, "pres_off").detail == ""
    assert driver.transaction("auth_off").state == "posted"
    db_session.expire_all()
    hold = db_session.scalar(select(Hold).where(Hold.authorization_id == "auth_off"))
    assert hold.status == "converted"
    balance = ledger.balance(db_session, card.account_id)
    assert (balance.posted, balance.held) == (97_500, 0)
    [event] = audits(db_session, "transactions.parked.post")
    assert event.actor_id == "scheduler" and json.loads(event.details)["posted"] == 2

    assert resume(db_session).summary == "nothing parked by the switch"
    assert journals(db_session) == 2  # posted once
    assert len(audits(db_session, "transactions.parked.post")) == 1


def test_a_declined_advice_still_releases_the_hold_while_posting_is_off(driver, bodies, card,
                                                                        db_session):
    switch(db_session, False)
    driver.run(bodies.request("auth_dec", 2_000), bodies.advice("auth_dec", 2_000,
                                                                code="InsufficientFunds"))
    assert driver.transaction("auth_dec").state == "declined"
    assert ledger.balance(db_session, card.account_id).held == 0


def test_waiting_for_the_authorization_is_not_parked_by_the_switch_and_no_orphan_posts_off(
        driver, bodies, card, db_session):
    switch(db_session, False)
    driver.run(bodies.presentment("auth_missing", 1_500, id_="pres_wait"))
    waiting = posting(db_session, "pres_wait")
    assert (waiting.status, waiting.detail) == ("parked", "")  # waiting for its authorization
    past_grace = waiting.created_at + dt.timedelta(hours=73)
    report = expire_authorizations(db_session, SCHEDULER, SETTINGS, past_grace)
    db_session.commit()
    assert report.orphans_posted == []  # nothing can be posted while the switch is off
    assert posting(db_session, "pres_wait").detail == ""
    switch(db_session, True)
    assert resume(db_session, past_grace).settled == []  # not the switch's
    report = expire_authorizations(db_session, SCHEDULER, SETTINGS, past_grace)
    db_session.commit()
    assert report.orphans_posted == [driver.transaction("auth_missing").id]
    assert posting(db_session, "pres_wait").status == "posted"


def test_parked_by_the_switch_is_no_orphan_even_past_the_grace_period(driver, bodies, card,
                                                                      db_session):
    driver.run(bodies.request("auth_g", 1_000), bodies.advice("auth_g", 1_000))
    switch(db_session, False)
    driver.run(bodies.presentment("auth_g", 1_000, id_="pres_g"))
    switch(db_session, True)
    past_grace = posting(db_session, "pres_g").created_at + dt.timedelta(hours=73)
    report = expire_authorizations(db_session, SCHEDULER, SETTINGS, past_grace)
    db_session.commit()
    assert report.orphans_posted == [] and audits(db_session, "transactions.orphans.post") == []
    assert resume(db_session, past_grace).posted == 1
    assert posting(db_session, "pres_g").status == "posted"


def test_a_switch_mark_on_a_posting_still_waiting_is_dropped_and_it_waits_again(
        driver, bodies, card, db_session):
    # An operator retry (which settles "without authorization") while the switch is off marks
    # a presentment whose authorization never came; back on, it waits for it again.
    driver.run(bodies.presentment("auth_none", 700, id_="pres_mark"))
    marked = posting(db_session, "pres_mark")
    marked.detail = SWITCHED_OFF
    db_session.commit()
    report = resume(db_session)
    assert (report.settled, report.posted) == ([driver.transaction("auth_none").id], 0)
    assert (posting(db_session, "pres_mark").status, posting(db_session, "pres_mark").detail) == (
        "parked", "")
    assert resume(db_session).settled == []


@pytest.mark.parametrize("enabled", [True, False])
def test_the_scheduler_runs_the_job(db_session, enabled):
    from console.scheduler.registry import JOBS
    from console.transactions import settings as lifecycle_settings

    job = next(j for j in JOBS if j.name == "transactions.post_parked")
    switch(db_session, enabled)
    with lifecycle_settings.configured(SETTINGS):
        summary = job.run(db_session, SCHEDULER, dt.datetime.now(dt.UTC))
    assert summary == ("nothing parked by the switch" if enabled
                       else "ledger posting switched off: nothing posted")


def test_repaired_failures_are_not_retried_while_ledger_posting_is_off(driver, db_session):
    from console.cards.services import create_card, link_account
    from console.ledger.models import AccountKind
    from console.transactions.expiry import retry_repairable
    from tests.transactions.support import Bodies, new_id

    token = new_id("tok")
    create_card(db_session, token_id=token, currency="EUR")
    db_session.commit()
    driver.run(Bodies(token).presentment(None, 500, id_="pres_repair"))
    assert posting(db_session, "pres_repair").reason == "unknown_account"
    account = ledger.open_account(db_session, kind=AccountKind.CUSTOMER, name="Funds",
                                  currency="EUR")
    link_account(db_session, SCHEDULER, token, account.id)
    switch(db_session, False)
    assert retry_repairable(db_session, SCHEDULER, SETTINGS, dt.datetime.now(dt.UTC)) == (
        "ledger posting switched off: nothing retried")
    assert posting(db_session, "pres_repair").status == "failed"
    assert audits(db_session, "transactions.posting.retry") == []
    switch(db_session, True)
    assert retry_repairable(db_session, SCHEDULER, SETTINGS, dt.datetime.now(dt.UTC)) == (
        "1 failed postings retried, 1 posted")
