"""The Overview on a large PostgreSQL database: page and panel render times.

What runs (one scratch database): one million transactions, one million decisions, 2.5 million
stored messages and three million deliveries (half a million of them duplicates) spread over
the last eight days, seeded with ``INSERT … SELECT generate_series`` (bodies are tiny: the
panels never read them). The ``monitoring.fold_metrics`` job then folds them into the rollups,
as the scheduler would have done while they arrived, and reports its rate.

Measured, each ``BENCH_PANEL_RUNS`` times through a signed-in test client (the real routes,
templates and queries): the home page, the polled panels fragment for each window, and each
view-model alone (``overview`` and ``traffic`` per window). The reference is a primary-key read
of one transaction in the same run: the floor of a request that touches the database.
Target: p95 under 300 ms for the home page and every panel.

Environment: BENCH_PANEL_TRANSACTIONS (1,000,000), BENCH_PANEL_DELIVERIES (3,000,000),
BENCH_PANEL_RUNS (20), BENCH_PANEL_PROFILE (a file: cProfile the panels fragment there first).
"""

from __future__ import annotations

import os
import sys
import time

from sqlalchemy import text

from bench.common import Figure, ScratchDatabase, percentile

TARGET_MS = 300.0

_SEED = [
    # Stored messages: one per first delivery, over the last 8 days, a few types.
    """
    INSERT INTO webhook_message (webhook_id, business_key, type, known_type, finci_id,
        finci_created_at, webhook_timestamp, received_at, body, body_sha256, body_masked,
        verified_by, answer_status, answer_body, status, attempts, next_attempt_at)
    SELECT 'msg_b' || n, 'bk_' || n,
           (ARRAY['authorization','presentment','reversal','refund','card_status'])[1 + n % 5],
           true, 'fin_b' || n,
           now() - (n::bigint * :span_s / :messages + n % 7) * interval '1 second',
           extract(epoch from now())::bigint - (n::bigint * :span_s / :messages),
           now() - (n::bigint * :span_s / :messages) * interval '1 second',
           '{}', md5(n::text) || md5(n::text), false, 'current', 200, '{}',
           CASE WHEN n % 1000 = 0 THEN 'dead' ELSE 'processed' END, 1,
           now() - (n::bigint * :span_s / :messages) * interval '1 second'
    FROM generate_series(1, :messages) AS n
    """,
    # Deliveries: the first of each message, then duplicates of some of them.
    """
    INSERT INTO webhook_delivery (message_id, webhook_id, received_at, disposition, body_sha256,
        webhook_timestamp, verified_by, headers, answer_status)
    SELECT id, webhook_id, received_at, 'first', body_sha256, webhook_timestamp, 'current',
           '{}', 200 FROM webhook_message
    """,
    """
    INSERT INTO webhook_delivery (message_id, webhook_id, received_at, disposition, body_sha256,
        webhook_timestamp, verified_by, headers, answer_status)
    SELECT id, webhook_id, received_at + interval '30 seconds', 'duplicate', body_sha256,
           webhook_timestamp, 'current', '{}', 200
    FROM webhook_message WHERE id % 5 = 0 LIMIT :duplicates
    """,
    """
    INSERT INTO card_transaction (link_key, authorization_id, token_id, currency, state,
        has_request, has_advice, awaiting_authorization, authorized_amount, reversed_amount,
        cleared_amount, refunded_amount, failed_postings, first_event_at, last_event_at,
        created_at, updated_at)
    SELECT 'authorization:a' || n, 'a' || n, 'tok_' || (n % 5000), 'EUR',
           (ARRAY['approved','declined','cleared','posted','reversed'])[1 + n % 5],
           true, true, false, 1000 + n % 9000, 0, 0, 0, 0,
           now() - (n::bigint * :span_s / :transactions) * interval '1 second',
           now() - (n::bigint * :span_s / :transactions) * interval '1 second',
           now() - (n::bigint * :span_s / :transactions) * interval '1 second',
           now() - (n::bigint * :span_s / :transactions) * interval '1 second'
    FROM generate_series(1, :transactions) AS n
    """,
    """
    INSERT INTO decision_record (authorization_id, origin, mode, token_id, amount, currency,
        finci_created_at, received_at, answer, reason, detail, default_used, rule_trace,
        latency_ms, total_ms, decided_at, advice_outcome)
    SELECT 'a' || n, 'request', 'integrator', 'tok_' || (n % 5000), 1000 + n % 9000, 'EUR',
           now() - (n::bigint * :span_s / :transactions) * interval '1 second',
           now() - (n::bigint * :span_s / :transactions) * interval '1 second',
           CASE WHEN n % 10 = 0 THEN 'error' ELSE 'success' END,
           CASE WHEN n % 10 = 0 THEN 'insufficient_funds' ELSE 'approved' END, '',
           n % 5000 = 0, '[]', '{}', 5 + (n % 400) / 10.0,
           now() - (n::bigint * :span_s / :transactions) * interval '1 second',
           CASE WHEN n % 10 = 0 THEN 'declined_as_answered' ELSE 'approved_as_answered' END
    FROM generate_series(1, :transactions) AS n
    """,
    # Index-only scans need the visibility map, which only VACUUM sets; without it every
    # counted index entry costs a heap visit and autovacuum competes with the measurement.
    "VACUUM (ANALYZE)",
]


def _seed(engine, transactions: int, deliveries: int) -> float:
    messages = max(1, deliveries * 5 // 6)
    params = {"messages": messages, "duplicates": deliveries - messages,
              "transactions": transactions, "span_s": 8 * 86400}
    started = time.perf_counter()
    with engine.connect() as connection:
        connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        for statement in _SEED:
            connection.execute(text(statement),
                               {k: v for k, v in params.items() if f":{k}" in statement})
    return time.perf_counter() - started


def _fold(database) -> tuple[float, int]:
    from console.db import utcnow
    from console.monitoring import folds

    started, rows = time.perf_counter(), 0
    while True:
        with database.session() as session:
            summary = folds.fold_job(session, None, utcnow())
            session.commit()
        folded = sum(int(part.rsplit(" ", 1)[1]) for part in summary.split(", "))
        rows += folded
        print(f"  folded {rows:,} rows", file=sys.stderr, flush=True)
        if not folded:
            return time.perf_counter() - started, rows


def _timed(call, runs: int) -> list[float]:
    call()  # warm: templates compiled, connections open
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def _figure(name: str, samples: list[float], reference: float) -> Figure:
    p95 = percentile(samples, 95)
    print(f"  {name}: p50 {percentile(samples, 50):.0f} ms, p95 {p95:.0f} ms, "
          f"max {max(samples):.0f} ms", file=sys.stderr, flush=True)
    return Figure(f"{name} p95", p95, "ms", reference=reference, reference_name="pk read p95",
                  higher_is_better=False, target=f"p95 < {TARGET_MS:.0f} ms",
                  met=p95 < TARGET_MS)


def run(pg_url: str) -> list[Figure]:
    from console import create_app
    from console.db import Database, make_engine, utcnow
    from console.monitoring.panels import overview
    from console.monitoring.windows import PanelWindow, traffic
    from console.transactions.models import CardTransaction
    from tests.conftest import HttpsClient, make_settings
    from tests.support.personas import sign_in_client

    transactions = int(os.environ.get("BENCH_PANEL_TRANSACTIONS", "1000000"))
    deliveries = int(os.environ.get("BENCH_PANEL_DELIVERIES", "3000000"))
    runs = int(os.environ.get("BENCH_PANEL_RUNS", "20"))
    figures: list[Figure] = []
    with ScratchDatabase(pg_url) as url:
        database = Database(make_engine(url, pool_size=4))
        print(f"  seeding {transactions:,} transactions, {deliveries:,} deliveries…",
              file=sys.stderr, flush=True)
        seed_s = _seed(database.engine, transactions, deliveries)
        fold_s, folded = _fold(database)
        with database.engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").execute(
                text("VACUUM (ANALYZE)"))
        print(f"  seeded in {seed_s:.0f} s; folded {folded:,} rows in {fold_s:.0f} s",
              file=sys.stderr)
        figures.append(Figure("metrics fold rate", folded / fold_s if fold_s else 0, "rows/s"))

        app = create_app(make_settings(url), database=database)
        app.test_client_class = HttpsClient
        client = app.test_client()
        with database.session() as session:
            sign_in_client(app, session, client, "viewer")
            session.commit()
        with database.session() as session:
            reference = percentile(_timed(
                lambda: session.get(CardTransaction, transactions // 2) and session.expunge_all(),
                runs), 95)

            def page(path):
                def call():
                    response = client.get(path, headers={"HX-Request": "true"}
                                          if "panels" in path else {})
                    assert response.status_code == 200, response.status_code
                return call

            profile_to = os.environ.get("BENCH_PANEL_PROFILE")
            if profile_to:  # where a page's time goes, on exactly the benchmark's data
                import cProfile

                cProfile.runctx("for _ in range(runs): call()", globals(),
                                {"runs": runs, "call": page("/overview/panels")}, profile_to)
            figures.append(_figure("home page", _timed(page("/"), runs), reference))
            for window in PanelWindow:
                figures.append(_figure(f"panels fragment {window.value}",
                                       _timed(page(f"/overview/panels?window={window.value}"),
                                              runs), reference))
            figures.append(_figure("overview view-model", _timed(
                lambda: (overview(session, "sandbox"), session.rollback()), runs), reference))
            for window in PanelWindow:
                figures.append(_figure(f"traffic view-model {window.value}", _timed(
                    lambda w=window: (traffic(session, w, utcnow()), session.rollback()), runs),
                    reference))
        database.engine.dispose()
    return figures
