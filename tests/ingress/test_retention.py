"""Refused-delivery records are purged after their retention, in bounded batches; accepted
messages and deliveries (payment evidence) are never touched."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from console.db import Database, make_engine
from console.ingress.models import StoredMessage, WebhookDelivery, WebhookRejection, minute_of
from console.ingress.retention import purge_rejections
from console.scheduler.models import JobStatus
from console.scheduler.registry import JOBS
from console.scheduler.runner import run_job
from tests.conftest import make_settings
from tests.ingress.helpers import deliver, ingress_settings, message

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)


def counter(at: dt.datetime, reason: str = "signature_mismatch", http_status: int = 401,
            count: int = 1, first_seen_at: dt.datetime | None = None) -> WebhookRejection:
    return WebhookRejection(minute=minute_of(at), source_ip="203.0.113.9", reason=reason,
                            count=count, first_seen_at=first_seen_at or at, last_seen_at=at,
                            http_status=http_status, peer_ip="203.0.113.9")


def _refused(session, *ages_days: float) -> None:
    session.add_all(counter(NOW - dt.timedelta(days=age)) for age in ages_days)
    session.flush()


def _ages(session) -> list[float]:
    session.expire_all()
    return sorted((NOW - at).total_seconds() / 86_400 for at in session.scalars(
        select(WebhookRejection.last_seen_at)))


def test_only_records_older_than_the_retention_are_purged(db_session):
    _refused(db_session, 0.5, 29.9, 30.1, 400)
    purged = purge_rejections(db_session, NOW, 30)
    assert (purged.deleted, purged.more_left) == (2, False)
    assert _ages(db_session) == pytest.approx([0.5, 29.9])
    assert purged.summary == ("purged 2 refused-delivery records from before "
                              "2026-10-28 12:00 UTC")
    again = purge_rejections(db_session, NOW, 30)
    assert (again.deleted, again.summary) == (0, "nothing refused before 2026-10-28 12:00 UTC")


def test_a_counter_goes_only_once_its_last_refusal_is_past_the_retention(db_session):
    now = NOW + dt.timedelta(seconds=30)
    cutoff = now - dt.timedelta(days=30)
    # Both in the cutoff's minute: one counted refusals on either side of it, one only before.
    straddling = counter(cutoff + dt.timedelta(seconds=1), count=5,
                         first_seen_at=cutoff - dt.timedelta(seconds=1))
    before = counter(cutoff - dt.timedelta(seconds=1), "source_not_allowed", 403, count=7)
    db_session.add_all([straddling, before])
    db_session.flush()
    assert straddling.minute == before.minute
    purged = purge_rejections(db_session, now, 30)
    assert purged.deleted == 1
    db_session.expire_all()
    assert [(r.reason, r.count) for r in db_session.scalars(select(WebhookRejection))] == [
        ("signature_mismatch", 5)]


def test_a_run_is_bounded_and_the_next_one_goes_on(db_session):
    _refused(db_session, 31, 32, 33, 34, 35, 1)
    first = purge_rejections(db_session, NOW, 30, batch=2, max_batches=2)
    assert (first.deleted, first.more_left) == (4, True)
    assert first.summary.endswith("; more left for the next run")
    assert _ages(db_session) == pytest.approx([1, 31])  # the oldest went first
    second = purge_rejections(db_session, NOW, 30, batch=2, max_batches=2)
    assert (second.deleted, second.more_left) == (1, False)
    assert _ages(db_session) == pytest.approx([1])


def test_exactly_full_batches_with_nothing_left_say_so(db_session):
    _refused(db_session, 31, 32, 33, 34)
    purged = purge_rejections(db_session, NOW, 30, batch=2, max_batches=2)
    assert (purged.deleted, purged.more_left) == (4, False)


def test_accepted_messages_and_deliveries_are_never_purged(client, db_session):
    assert deliver(client, message()).status_code == 200
    _refused(db_session, 365)
    purge_rejections(db_session, NOW + dt.timedelta(days=3650), 1)
    counts = [db_session.scalar(select(func.count()).select_from(model))
              for model in (StoredMessage, WebhookDelivery, WebhookRejection)]
    assert counts == [1, 1, 0]


def test_the_scheduled_job_uses_the_retention_of_its_app(db_factory):
    from console import create_app

    url = db_factory.fresh()
    database = Database(make_engine(url))
    app = create_app(make_settings(url, ingress=ingress_settings(rejection_retention_days=2)),
                     database=database)
    now = dt.datetime.now(dt.UTC)
    with database.transaction() as session:
        session.add_all(counter(now - dt.timedelta(days=age), "source_not_allowed", 403)
                        for age in (1, 3))
    [job] = [job for job in JOBS if job.name == "ingress.purge_rejections"]
    try:
        assert run_job(database, job, app) == "success"
        with database.transaction() as session:
            kept = session.scalars(select(WebhookRejection.last_seen_at)).all()
            status = session.scalar(select(JobStatus).where(JobStatus.name == job.name))
            assert len(kept) == 1 and now - kept[0] < dt.timedelta(days=2)
            assert status.last_summary.startswith("purged 1 refused-delivery record")
        # Without an app there are no settings to read: a recorded failure, never a guess.
        assert run_job(database, job) == "failure"
    finally:
        database.dispose()
