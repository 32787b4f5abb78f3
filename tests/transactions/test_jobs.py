"""The lifecycle jobs as the scheduler runs them: registered, each in its own transaction on a
real engine, calling FINCI with no transaction of theirs held open."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from console.audit import Actor
from console.cards import actions
from console.cards.models import Card, CardAction
from console.cards.services import issue_funded_card
from console.db import Database, make_engine
from console.finci.contract import TokenStage, TokenStatus
from console.scheduler.models import JobStatus
from console.scheduler.registry import JOBS
from console.scheduler.runner import run_job
from console.simulator.card_api_server import CardApiServer
from console.simulator.cards import CardBook, SimCard
from console.transactions import settings as lifecycle_settings
from console.transactions.settings import LifecycleSettings
from tests.transactions.support import new_id

LIFECYCLE_JOBS = {"transactions.expire", "transactions.retry_postings", "cards.send_actions",
                  "cards.refresh"}


@pytest.fixture
def database(db_factory):
    database = Database(make_engine(db_factory.fresh()))
    yield database
    database.dispose()


def job(name):
    return next(j for j in JOBS if j.name == name)


def test_every_lifecycle_job_is_registered():
    assert {j.name for j in JOBS} >= LIFECYCLE_JOBS


def test_the_jobs_run_under_the_scheduler_and_talk_to_finci(database):
    token = new_id("tok")
    book = CardBook([SimCard(token_id=token, embossing_name="ALAN TURING",
                             card_number="5312-34**-****-5678", expiration_date="2029-02",
                             product_id="prod_debit_eur", currency="EUR",
                             token_status=TokenStatus.ACTIVE, token_stage=TokenStage.DIGITAL,
                             person_id="200002")])
    with CardApiServer(book, "job-token", "job-secret") as finci:
        settings = LifecycleSettings(api_base_url=finci.url, api_token="job-token",
                                     api_secret="job-secret")
        with database.transaction() as session:
            card = issue_funded_card(session, token_id=token, balance=1_000)
            card.person_id = "200002"
            session.flush()
            actions.request_action(session, Actor.system("operator"), token, "deactivate",
                                   "customer request", settings)
        with lifecycle_settings.configured(settings):
            outcomes = {name: run_job(database, job(name)) for name in sorted(LIFECYCLE_JOBS)}
    assert set(outcomes.values()) == {"success"}, outcomes
    assert book.get(token).token_status == TokenStatus.DEACTIVATED
    with database.transaction() as session:
        status = {s.name: s.last_summary for s in session.scalars(select(JobStatus))}
        assert status["cards.send_actions"] == "1 sent, 0 to retry, 0 failed, 0 refused"
        assert status["cards.refresh"].startswith("1 owners, 1 cards")
        assert session.scalar(select(CardAction.status)) == "sent"
        refreshed = session.scalar(select(Card).where(Card.token_id == token))
        assert (refreshed.status, refreshed.masked_number) == ("deactivated",
                                                               "5312-34**-****-5678")


def test_without_card_api_settings_the_card_jobs_say_so(database):
    with lifecycle_settings.configured(LifecycleSettings()):
        assert run_job(database, job("cards.send_actions")) == "success"
    with database.transaction() as session:
        summary = session.scalar(select(JobStatus.last_summary)
                                 .where(JobStatus.name == "cards.send_actions"))
    assert summary == "FINCI Card API not configured"
