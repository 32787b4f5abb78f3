"""The hot statement runs on the driver's cursor (console.ingress.services): a connection lost
in the middle of it must still be a 503 with nothing stored, and the next delivery must succeed
on a healthy connection (PostgreSQL only: it is the only backend with that path)."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import create_engine, event, text

from console import create_app
from console.db import Database, make_engine
from tests.conftest import make_settings
from tests.ingress.helpers import ingress_settings, message, signed

WEBHOOK_PATH = "/webhooks/finci"


@pytest.fixture
def pg_database(db_factory):
    if db_factory.backend != "postgresql":
        pytest.skip("the driver-level hot path is PostgreSQL's")
    url = db_factory.fresh()
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    yield url, admin
    admin.dispose()


def _wait_for_lock_waiter(admin, database_name: str) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with admin.connect() as connection:
            pid = connection.scalar(text(
                "SELECT pid FROM pg_stat_activity WHERE datname = :db "
                "AND application_name = 'finci-console' AND wait_event_type = 'Lock'"),
                {"db": database_name})
        if pid is not None:
            return pid
        time.sleep(0.05)
    raise AssertionError("the ingress INSERT never waited on the held row")


def test_a_connection_killed_mid_insert_is_a_503_and_the_retry_is_stored_once(pg_database):
    url, admin = pg_database
    settings = make_settings(url, ingress=ingress_settings())
    database = Database(make_engine(url, connect_timeout_s=2))
    invalidated = []
    event.listen(database.engine, "invalidate", lambda *args: invalidated.append(args))
    app = create_app(settings, database=database)
    raw, headers = signed(message("presentment"))

    # Another transaction holds the same webhook id uncommitted, so our INSERT … ON CONFLICT
    # waits inside the driver call; the backend is then terminated under it.
    blocking_engine = create_engine(url)
    blocker = blocking_engine.connect()
    held = blocker.begin()
    blocker.execute(text(
        "INSERT INTO webhook_message (webhook_id, business_key, type, known_type, finci_id, "
        "finci_created_at, webhook_timestamp, received_at, body, body_sha256, body_masked, "
        "verified_by, answer_status, answer_body, status, attempts, next_attempt_at) VALUES "
        "(:id, 'blocker', 'presentment', true, 'blocker', now(), 0, now(), '{}', '', false, "
        "'x', 200, '{}', 'pending', 0, now())"), {"id": headers["webhook-id"]})
    answers = []
    request = threading.Thread(target=lambda: answers.append(
        app.test_client().post(WEBHOOK_PATH, data=raw, headers=headers)))
    try:
        request.start()
        waiting = _wait_for_lock_waiter(admin, url.rsplit("/", 1)[1])
        with admin.connect() as connection:
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": waiting})
        request.join(10)
    finally:
        held.rollback()
        blocker.close()
        blocking_engine.dispose()

    [refused] = answers
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "5"
    assert len(invalidated) == 1  # the dead connection left the pool, not just the request
    with admin.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM webhook_message")) == 0
        assert connection.scalar(text("SELECT count(*) FROM webhook_delivery")) == 0

    # FINCI retries the same delivery: stored once, on a healthy pooled connection.
    client = app.test_client()
    assert client.post(WEBHOOK_PATH, data=raw, headers=headers).status_code == 200
    assert client.post(WEBHOOK_PATH, data=raw, headers=headers).status_code == 200
    with admin.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM webhook_message")) == 1
        assert connection.scalar(text("SELECT count(*) FROM webhook_delivery")) == 2
    database.dispose()
