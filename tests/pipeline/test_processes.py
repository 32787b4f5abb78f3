"""Real processes: gunicorn answering concurrent and oversized deliveries, the database vanishing
mid-run, and a worker killed with -9 in the middle of a batch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import func, select

from console.audit import Actor
from console.db import Database, make_engine
from console.deployment import record_environment
from console.ingress.models import WebhookRejection
from tests.ingress.helpers import (
    signed,
)
from tests.support.processes import Counts, body, post, process_env, run_worker, store_messages
from tests.support.servers import ROOT, Gunicorn

pytestmark = pytest.mark.slow


@pytest.fixture
def database_url(db_factory) -> str:
    """A fresh migrated database of its own, stamped for the sandbox like `db upgrade` does."""
    url = db_factory.fresh()
    database = Database(make_engine(url))
    with database.transaction() as session:
        record_environment(session, "sandbox", Actor.system("test"))
    database.dispose()
    return url


@pytest.fixture
def pg_url(db_factory, database_url) -> str:
    if db_factory.backend != "postgresql":
        pytest.skip("concurrent processes against one database: PostgreSQL")
    return database_url


def test_fifty_concurrent_deliveries_of_one_message_are_one_message_and_one_effect(
        pg_url, pan_scanner):
    env = process_env(pg_url)
    raw, headers = signed(body())
    with Gunicorn(env, workers=2, threads=8) as server:
        barrier = threading.Barrier(50)

        def deliver(_):
            barrier.wait()
            return post(server.url, raw, headers)[0]

        with ThreadPoolExecutor(max_workers=50) as pool:
            responses = list(pool.map(deliver, range(50)))
        statuses = {r.status_code for r in responses}
        bodies = {r.content for r in responses}

        # The cap holds for chunked bodies too (no Content-Length: read at most cap + 1).
        chunked = requests.post(server.url + "/webhooks/finci", headers=signed(body())[1],
                                data=(b"x" * 65536 for _ in range(8)), timeout=10)
    pan_scanner.scan(server.output(), "gunicorn")
    assert statuses == {200}
    assert bodies == {b'{"status": "success"}'}
    assert chunked.status_code == 413
    counts = Counts(pg_url)
    try:
        assert counts()["messages"] == 1
        report = run_worker(env, "--once")
        assert report["applied"] == 1
        after = counts()
        assert (after["effects"], after["applied"], after["applied_twice"]) == (1, 1, 0)
    finally:
        counts.close()


def test_an_unsigned_flood_across_processes_is_counted_not_written_row_by_row(pg_url,
                                                                            pan_scanner):
    """Issue 11: 600 unsigned POSTs wrote 600 rows. Two processes racing on one counter now
    add up to the exact total in one row per minute."""
    raw, headers = signed(body())
    del headers["webhook-signature"]
    with Gunicorn(process_env(pg_url), workers=2, threads=8) as server:
        barrier = threading.Barrier(20)

        def flood(_):
            barrier.wait()
            with requests.Session() as session:
                return [post(server.url, raw, headers, session)[0].status_code
                        for _ in range(15)]

        with ThreadPoolExecutor(max_workers=20) as pool:
            statuses = [status for batch in pool.map(flood, range(20)) for status in batch]
    pan_scanner.scan(server.output(), "gunicorn")
    assert set(statuses) == {401}
    engine = make_engine(pg_url)
    try:
        with engine.connect() as connection:
            written = connection.execute(
                select(func.count()).select_from(WebhookRejection)).scalar_one()
            assert 1 <= written <= 2  # one counter, or two if the flood crossed a minute
            assert connection.execute(select(func.sum(WebhookRejection.count))).scalar() == 300
    finally:
        engine.dispose()


def test_database_outage_answers_503_fast_and_loses_nothing_acknowledged(
        pg_url, pan_scanner):
    from tests.pipeline.tcp_proxy import TcpProxy

    proxy = TcpProxy()
    via_proxy = pg_url.replace("127.0.0.1:5432", proxy.url_host)
    assert via_proxy != pg_url
    env = process_env(via_proxy, DB_POOL_SIZE="4")
    acknowledged: set[str] = set()
    deliveries = [signed(body()) for _ in range(45)]
    try:
        with Gunicorn(env, workers=2, threads=4) as server, requests.Session() as http:
            for raw, headers in deliveries[:20]:
                response, _ = post(server.url, raw, headers, http)
                assert response.status_code == 200
                acknowledged.add(headers["webhook-id"])

            proxy.cut()
            refused = []
            for raw, headers in deliveries[20:30]:
                response, elapsed = post(server.url, raw, headers, http)
                refused.append((response.status_code, response.headers.get("Retry-After"),
                                elapsed))
                if response.status_code == 200:  # must not happen, but then it is acked
                    acknowledged.add(headers["webhook-id"])
            proxy.restore()

            # FINCI retries what it could not deliver, and new traffic arrives.
            for raw, headers in deliveries[20:]:
                response, _ = post(server.url, raw, headers, http)
                assert response.status_code == 200
                acknowledged.add(headers["webhook-id"])
        pan_scanner.scan(server.output(), "gunicorn")
    finally:
        proxy.close()
    assert {status for status, _, _ in refused} == {503}
    assert all(retry_after == "5" for _, retry_after, _ in refused)
    assert max(elapsed for _, _, elapsed in refused) < 1.5, refused
    print(f"503 answers during the outage: max {max(e for _, _, e in refused) * 1000:.0f} ms")

    worker_env = process_env(pg_url)
    run_worker(worker_env, "--once")
    counts = Counts(pg_url)
    try:
        after = counts()
    finally:
        counts.close()
    assert len(acknowledged) == 45
    assert after["messages"] == 45
    assert (after["effects"], after["applied"], after["applied_twice"]) == (45, 45, 0)


def test_a_worker_killed_mid_batch_loses_nothing_and_applies_nothing_twice(pg_url):
    database_url, total = pg_url, 40
    store_messages(database_url, total)
    env = process_env(database_url, PROCESS_TEST_HANDLER_DELAY_S="0.03")
    counts = Counts(database_url)
    victim = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "worker", "--json"], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while counts()["effects"] < 8:
            assert victim.poll() is None, "the worker exited early"
            assert time.monotonic() < deadline, "the worker made no progress"
            time.sleep(0.02)
        os.kill(victim.pid, signal.SIGKILL)  # mid-batch: it holds claims it will never finish
        victim.wait(timeout=10)
        killed_at = counts()
        assert 0 < killed_at["effects"] < total
        time.sleep(2.2)  # the lease (2 s) of the dead worker's claims runs out
        report = run_worker(env, "--once")
        after = counts()
    finally:
        if victim.poll() is None:
            victim.kill()
        counts.close()
    assert after["processed"] == total
    assert (after["effects"], after["applied"], after["applied_twice"]) == (total, total, 0)
    assert after["lease_expired"] >= 1
    assert report["expired"] >= 1
