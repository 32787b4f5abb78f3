"""Refusals are counted per (minute, source address, reason), not written one row each:
unauthenticated traffic must not become unbounded writes (issue 11)."""

from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select, text

from console import migrate
from console.db import Database, make_engine
from console.ingress import services
from console.ingress.models import WebhookRejection
from console.ingress.verify import Source
from tests.ingress.helpers import WEBHOOK_PATH, message, signed


def _counters(session) -> list[WebhookRejection]:
    session.expire_all()
    return list(session.scalars(select(WebhookRejection).order_by(
        WebhookRejection.minute, WebhookRejection.source_ip, WebhookRejection.reason)))


def _unsigned(client, *, remote: str = "10.9.8.7", webhook_id: str | None = None):
    raw, headers = signed(message(), webhook_id=webhook_id)
    del headers["webhook-signature"]
    return client.post(WEBHOOK_PATH, data=raw, headers=headers,
                       environ_base={"REMOTE_ADDR": remote})


def test_two_hundred_unsigned_deliveries_from_one_source_are_one_counter(client, clock,
                                                                        db_session, counts):
    clock.now = float(int(clock.now) // 60 * 60)  # the start of a minute: all 200 fall in it
    first_id = "msg_firstsample"
    statuses = {_unsigned(client, webhook_id=first_id if n == 0 else None).status_code
                for n in range(200)}
    assert statuses == {401}
    assert db_session.scalar(select(func.count()).select_from(WebhookRejection)) == 1  # not 200
    [row] = _counters(db_session)
    assert (row.source_ip, row.reason, row.count) == ("10.9.8.7", "missing_header", 200)
    at = dt.datetime.fromtimestamp(clock.now, dt.UTC)
    assert row.minute == row.first_seen_at == row.last_seen_at == at == at.replace(second=0)
    # One sample of each detail column: the first, still masked and named, never the body.
    assert (row.detail, row.http_status, row.peer_ip, row.webhook_id) == (
        "webhook-signature", 401, "10.9.8.7", first_id)
    assert counts() == {"messages": 0, "deliveries": 0, "rejections": 200}


def test_another_source_reason_or_minute_is_another_counter(client, clock, db_session):
    clock.now = float(int(clock.now) // 60 * 60)
    _unsigned(client)
    _unsigned(client, remote="10.9.8.8")
    raw, headers = signed(message(), timestamp=int(clock.now))
    headers["webhook-signature"] = "v1," + "A" * 43 + "="
    client.post(WEBHOOK_PATH, data=raw, headers=headers, environ_base={"REMOTE_ADDR": "10.9.8.7"})
    clock.now += 59
    _unsigned(client)
    clock.now += 1  # the next minute
    _unsigned(client)
    start = dt.datetime.fromtimestamp(clock.now - 60, dt.UTC)
    assert [(r.minute - start, r.source_ip, r.reason, r.count, r.last_seen_at - r.first_seen_at)
            for r in _counters(db_session)] == [
        (dt.timedelta(0), "10.9.8.7", "missing_header", 2, dt.timedelta(seconds=59)),
        (dt.timedelta(0), "10.9.8.7", "signature_mismatch", 1, dt.timedelta(0)),
        (dt.timedelta(0), "10.9.8.8", "missing_header", 1, dt.timedelta(0)),
        (dt.timedelta(minutes=1), "10.9.8.7", "missing_header", 1, dt.timedelta(0)),
    ]


def test_an_unknown_source_is_counted_too(test_database, db_session):
    at = dt.datetime(2026, 12, 7, 5, 0, 30, tzinfo=dt.UTC)
    for _ in range(3):
        services.record_rejection(test_database, reason="body_incomplete", status=400,
                                  source=Source(None, None, False), received_at=at)
    [row] = _counters(db_session)
    assert (row.source_ip, row.peer_ip, row.count) == ("", None, 3)


def test_out_of_order_refusals_keep_the_earliest_and_latest_sighting(test_database, db_session):
    source = Source("10.9.8.7", "10.9.8.7", False)
    base = dt.datetime(2026, 12, 7, 5, 0, tzinfo=dt.UTC)
    for second, detail in ((30, None), (10, "webhook-id"), (50, "webhook-timestamp"), (20, None)):
        services.record_rejection(test_database, reason="header_malformed", status=401,
                                  source=source, received_at=base.replace(second=second),
                                  detail=detail)
    [row] = _counters(db_session)
    assert (row.count, row.first_seen_at.second, row.last_seen_at.second, row.detail) == (
        4, 10, 50, "webhook-id")


def test_the_rejected_traffic_pages_show_the_count(client, clock, as_viewer):
    for _ in range(37):
        _unsigned(client)
    page = as_viewer.get("/pipeline/rejections").get_data(as_text=True)
    assert "<th>Count</th>" in page and '<td class="num">37</td>' in page
    assert "37 · missing_header" in page and "37 · 10.9.8.7" in page
    listed = as_viewer.get("/pipeline/deliveries?verification=rejected").get_data(as_text=True)
    assert "<th>Count</th>" in listed and '<td class="num">37</td>' in listed


def test_concurrent_upserts_of_one_key_add_up_exactly(db_factory):
    """Threads, each with its own connection and transaction, all on one counter."""
    database = Database(make_engine(db_factory.fresh(), pool_size=8))
    at = dt.datetime(2026, 12, 7, 5, 0, 1, tzinfo=dt.UTC)
    threads, each = (8, 25) if db_factory.backend == "postgresql" else (4, 10)
    barrier = threading.Barrier(threads)

    def refuse(n: int) -> None:
        source = Source("10.9.8.7", "10.9.8.7", False)
        barrier.wait()
        for i in range(each):
            services.record_rejection(database, reason="signature_mismatch", status=401,
                                      source=source,
                                      received_at=at + dt.timedelta(milliseconds=n * each + i))

    try:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(refuse, range(threads)))
        with database.transaction() as session:
            rows = session.execute(select(WebhookRejection.count, WebhookRejection.first_seen_at,
                                          WebhookRejection.last_seen_at)).all()
        assert len(rows) == 1
        count, first, last = rows[0]
        assert count == threads * each
        assert (first, last) == (at, at + dt.timedelta(milliseconds=threads * each - 1))
    finally:
        database.dispose()


def test_the_migration_folds_existing_rows_into_counters(db_factory):
    engine = make_engine(db_factory.empty())
    minute = dt.datetime(2026, 12, 1, 10, 15, tzinfo=dt.UTC)
    old_rows = [(minute + dt.timedelta(seconds=s), reason, source, detail)
                for s, reason, source, detail in (
                    (5, "signature_mismatch", "10.0.0.1", None),
                    (40, "signature_mismatch", "10.0.0.1", "webhook-signature"),
                    (59, "signature_mismatch", "10.0.0.1", None),
                    (61, "signature_mismatch", "10.0.0.1", None),  # the next minute
                    (7, "signature_mismatch", None, None),
                    (8, "signature_mismatch", None, None),
                    (9, "source_not_allowed", "10.0.0.1", None))]
    try:
        migrate.upgrade(engine, "0007_audit_checkpoint")
        with engine.begin() as connection:
            for at, reason, source, detail in old_rows:
                connection.execute(text(
                    "INSERT INTO webhook_rejection (received_at, reason, detail, http_status, "
                    "source_ip, peer_ip) VALUES (:at, :reason, :detail, 401, :source, :source)"),
                    {"at": at if db_factory.backend == "postgresql"
                     else at.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds"),
                     "reason": reason, "detail": detail, "source": source})
        migrate.upgrade(engine)
        with Database(engine).transaction() as session:
            folded = [(r.minute, r.source_ip, r.reason, r.count, r.first_seen_at,
                       r.last_seen_at, r.detail) for r in _counters(session)]
            assert folded == [
                (minute, "", "signature_mismatch", 2, minute.replace(second=7),
                 minute.replace(second=8), None),
                (minute, "10.0.0.1", "signature_mismatch", 3, minute.replace(second=5),
                 minute.replace(second=59), "webhook-signature"),
                (minute, "10.0.0.1", "source_not_allowed", 1, minute.replace(second=9),
                 minute.replace(second=9), None),
                (minute.replace(minute=16), "10.0.0.1", "signature_mismatch", 1,
                 minute.replace(minute=16, second=1), minute.replace(minute=16, second=1), None),
            ]
            # Folded counters go on counting.
        services.record_rejection(Database(engine), reason="source_not_allowed", status=403,
                                  source=Source("10.0.0.1", "10.0.0.1", False),
                                  received_at=minute.replace(second=30))
        with Database(engine).transaction() as session:
            assert session.scalar(select(func.sum(WebhookRejection.count))) == 8
        migrate.downgrade(engine, "0007_audit_checkpoint")
        with engine.connect() as connection:
            back = connection.execute(text(
                "SELECT reason, source_ip FROM webhook_rejection ORDER BY received_at")).all()
        # One row per counter: the downgrade cannot know the single refusals.
        assert [tuple(r) for r in back] == [
            ("signature_mismatch", "10.0.0.1"), (("signature_mismatch", None)),
            ("source_not_allowed", "10.0.0.1"), ("signature_mismatch", "10.0.0.1")]
    finally:
        engine.dispose()


@pytest.mark.parametrize("reason", ["x" * 60])
def test_a_long_reason_is_cut_to_the_column(test_database, db_session, reason):
    at = dt.datetime(2026, 12, 7, 5, 0, tzinfo=dt.UTC)
    for _ in range(2):
        services.record_rejection(test_database, reason=reason, status=404,
                                  source=Source("10.9.8.7", "10.9.8.7", False), received_at=at)
    [row] = _counters(db_session)
    assert (row.reason, row.count) == ("x" * 48, 2)
