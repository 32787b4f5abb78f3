"""The simulator against the console's real ingress (``POST /webhooks/finci``), served in-process.

The console runs on a database of its own (``db_factory.fresh()``), not the shared rolled-back
connection: a threaded server answers from several threads at once, and each needs a connection
from the pool, as under gunicorn.
"""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select
from werkzeug.serving import WSGIRequestHandler, make_server

from console import create_app
from console.db import Database, make_engine
from console.finci.webhook_signature import WebhookSecret
from console.ingress.models import StoredMessage, WebhookDelivery
from console.ingress.settings import IngressSettings
from console.simulator.runner import run_scenario
from console.simulator.sender import RetryPolicy
from tests.conftest import make_settings

SECRET = WebhookSecret(b"simulator-end-to-end-secret-0123")


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):
        pass


@pytest.fixture
def console(db_factory):
    url = db_factory.fresh()
    ingress = IngressSettings(secrets=(SECRET,), rate_limit_per_s=1_000_000.0,
                              rate_limit_burst=1_000_000)
    engine = make_engine(url, pool_size=10)
    database = Database(engine)
    app = create_app(make_settings(url, ingress=ingress), database=database)
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_Quiet)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02},
                              daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", database
    server.shutdown()
    server.server_close()
    thread.join(5)
    engine.dispose()


def _count(database, model):
    with database.engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(model)).scalar_one()


def test_happy_path_against_the_real_ingress(console):
    url, database = console
    summary = run_scenario("happy-path", url, SECRET, cards=3, run_id="e2e", malformed_rate=1.0,
                           retry=RetryPolicy(max_attempts=3, base_s=0.05)).summary()
    assert summary["problems"] == [], summary["problems"]
    assert summary["sent"] == summary["acknowledged"] > 0
    assert summary["answers"]["in_time"] == summary["answers"]["total"] > 0
    assert summary["bad_requests"]["rejected_4xx"] == summary["bad_requests"]["sent"] == 3
    # Every message FINCI sent is stored once, with one delivery each.
    assert _count(database, StoredMessage) == summary["sent"]
    assert _count(database, WebhookDelivery) == summary["deliveries"]["total"]


def test_duplicates_against_the_real_ingress_get_the_same_answer(console):
    url, database = console
    summary = run_scenario("duplicate-flood", url, SECRET, cards=2, run_id="e2edup",
                           retry=RetryPolicy(max_attempts=3, base_s=0.05)).summary()
    assert summary["problems"] == [], summary["problems"]
    assert summary["deliveries"]["duplicates"] > 0
    assert summary["duplicate_answer_mismatches"] == 0
    assert _count(database, StoredMessage) == summary["sent"]


# --- scenarios against the whole console: ingress, decisioning, worker, ledger ------------------

def _seed_and_drain(database, run):
    """Seed the simulator's cards, run the scenario, then let a worker apply everything."""
    from console.audit import Actor
    from console.demo_seed import seed_cards
    from console.pipeline.worker import Worker

    with database.transaction() as session:
        seed_cards(session, Actor.cli("test"), seed=1, count=6)
    summary = run()
    worker = Worker(database, IngressSettings(secrets=(SECRET,)), name="e2e-worker")
    worker.run(until_idle=True)
    return summary


def test_happy_path_is_approved_processed_and_leaves_the_ledger_balanced(console):
    from console.decisioning.models import DecisionRecord
    from console.ledger.services import verify_balances

    url, database = console
    summary = _seed_and_drain(database, lambda: run_scenario(
        "happy-path", url, SECRET, seed=1, cards=6, run_id="e2estate",
        retry=RetryPolicy(max_attempts=3, base_s=0.05)).summary())
    assert summary["problems"] == [], summary["problems"]
    assert summary["answers"]["success"] > 0
    with database.transaction() as session:
        answers = session.scalars(select(DecisionRecord.answer).where(
            DecisionRecord.origin == "request")).all()
        assert answers and set(answers) <= {"success", "error"}
        assert answers.count("success") == summary["answers"]["success"]
        statuses = set(session.scalars(select(StoredMessage.status)))
        assert statuses == {"processed"}, statuses
        assert verify_balances(session) == []


def test_timeout_storm_advices_decline_release_holds_and_say_why(console):
    """FINCI's side of a timeout: it stops waiting (a deadline shorter than our answer takes),
    declines with InsufficientFunds, and the console must release every hold it placed."""
    from console.decisioning.models import DecisionRecord
    from console.ledger.models import Hold
    from console.ledger.services import verify_balances

    url, database = console
    summary = _seed_and_drain(database, lambda: run_scenario(
        "timeout-storm", url, SECRET, seed=1, cards=6, run_id="e2estorm", deadline_s=0.0005,
        retry=RetryPolicy(max_attempts=3, base_s=0.05)).summary())
    assert summary["answers"]["timeout"] > 0
    assert set(summary["advices"]) == {"InsufficientFunds"}, summary["advices"]
    with database.transaction() as session:
        approved = session.scalars(select(DecisionRecord).where(
            DecisionRecord.origin == "request", DecisionRecord.answer == "success")).all()
        assert approved, "the console approved in time for itself; FINCI had stopped waiting"
        # We answered within our budget, so the console cannot tell FINCI's network-side timeout
        # from a FINCI-side decline: either way the record names the divergence.
        assert {record.advice_outcome for record in approved} <= {"timeout", "finci_declined"}
        assert all(record.hold_action == "released" for record in approved)
        assert {record.advice_response_code for record in approved} == {"InsufficientFunds"}
        open_holds = session.scalars(select(Hold).where(Hold.status == "open")).all()
        assert open_holds == []
        assert verify_balances(session) == []


def test_a_short_demo_run_on_seeded_cards_has_no_unknown_cards_or_posting_failures(console):
    """`make demo` seeds the console, then runs steady with the same seed and card count: no
    decision may read "unknown card" and no posting may fail (both were red from minute one
    when the seed created other cards than the ones the simulator scripts)."""
    from console.audit import Actor
    from console.decisioning.models import DecisionRecord, Reason
    from console.demo_seed import seed_cards
    from console.pipeline.worker import Worker
    from console.transactions.models import PostingStatus, TransactionPosting

    url, database = console
    cards = 8
    with database.transaction() as session:
        seed_cards(session, Actor.cli("test"), seed=1, count=cards)
    # Every scripted card in flight at once, so the short run reaches all of them.
    summary = run_scenario("steady", url, SECRET, seed=1, cards=cards, concurrency=cards,
                           run_id="e2edemo", rate=40, duration_s=3,
                           retry=RetryPolicy(max_attempts=3, base_s=0.05)).summary()
    Worker(database, IngressSettings(secrets=(SECRET,)), name="e2e-worker").run(until_idle=True)
    assert summary["sent"] > cards
    with database.transaction() as session:
        reasons = set(session.scalars(select(DecisionRecord.reason)))
        assert Reason.CARD_UNKNOWN.value not in reasons, reasons
        failed = session.execute(select(TransactionPosting.reason, TransactionPosting.detail)
                                 .where(TransactionPosting.status == PostingStatus.FAILED)).all()
        assert failed == []
        tokens = set(session.scalars(select(DecisionRecord.token_id)))
        assert len(tokens) == cards, tokens


def test_a_short_demo_run_on_seeded_cards_records_funds_limit_and_velocity_declines(console):
    """The demo shows realistic declines: the steady scenario scripts authorizations over the
    seeded balance, over the seeded per-transaction limit and past the velocity limit, and the
    console declines each for that reason (and clears nothing it declined)."""
    from console.audit import Actor
    from console.decisioning.models import DecisionRecord, Reason
    from console.demo_seed import seed_cards
    from console.pipeline.worker import Worker
    from console.transactions.models import PostingStatus, TransactionPosting

    url, database = console
    cards = 8
    with database.transaction() as session:
        seed_cards(session, Actor.cli("test"), seed=1, count=cards)
    wanted = {Reason.INSUFFICIENT_FUNDS.value, Reason.LIMIT_EXCEEDED.value,
              Reason.VELOCITY.value}

    def reasons() -> set[str]:
        with database.transaction() as session:
            return set(session.scalars(select(DecisionRecord.reason).where(
                DecisionRecord.origin == "request")))

    # Until all three declines are answered (the velocity card's 31 requests take longest on a
    # loaded machine), at most a minute: a fixed 6 s run missed the last one under load.
    stop = threading.Event()

    def watch():
        while not stop.wait(0.5):
            if wanted <= reasons():
                stop.set()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    run_scenario("steady", url, SECRET, seed=1, cards=cards, concurrency=cards,
                 run_id="e2edecl", rate=80, duration_s=60, stop=stop,
                 retry=RetryPolicy(max_attempts=3, base_s=0.05))
    stop.set()
    watcher.join(5)
    Worker(database, IngressSettings(secrets=(SECRET,)), name="e2e-worker").run(until_idle=True)
    with database.transaction() as session:
        assert wanted <= reasons(), reasons()
        failed = session.execute(select(TransactionPosting.reason)
                                 .where(TransactionPosting.status == PostingStatus.FAILED)).all()
        assert failed == []
