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
