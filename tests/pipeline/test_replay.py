"""Replay: preview, start, rate-limited steps, cancel; idempotent and audited."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from console.audit import Actor, AuditAction
from console.audit.models import AuditEvent
from console.ingress.models import MessageStatus
from console.pipeline import handlers, replay
from console.pipeline.models import ReplayStatus
from console.pipeline.replay import Criteria, ReplayRefused

OPERATOR = Actor.cli("operator-ola")


def audit_actions(session) -> list[str]:
    return [e.action for e in session.scalars(select(AuditEvent).order_by(AuditEvent.seq))]


@pytest.fixture
def processed_and_dead(worker, store, clock):
    """Two applied presentments, one dead refund, one no-handler reversal."""
    applied = [store("presentment"), store("presentment")]
    dead = store("refund")
    no_handler = store("reversal")
    with handlers.using("presentment", lambda ctx: None), \
            handlers.using("refund", lambda ctx: (_ for _ in ()).throw(
                handlers.DeadLetter("broken"))):
        worker.run_once()
    return {"applied": applied, "dead": dead, "no_handler": no_handler}


def test_preview_counts_matches_and_no_ops(db_session, processed_and_dead):
    with handlers.using("presentment", lambda ctx: None), \
            handlers.using("refund", lambda ctx: None):
        everything = replay.preview(db_session, Criteria(since=dt.datetime(2000, 1, 1,
                                                                           tzinfo=dt.UTC)))
        dead_only = replay.preview(db_session, Criteria(status=MessageStatus.DEAD))
    # Applied messages and the reversal (no handler) would change nothing; the refund would.
    assert (everything.total, everything.noops, everything.would_apply) == (4, 3, 1)
    assert everything.by_status == {"processed": 3, "dead": 1}
    assert (dead_only.total, dead_only.noops) == (1, 0)


def test_replaying_a_dead_letter_after_a_fix_applies_it_once(db_session, worker, inspect,
                                                             pipeline_settings, clock,
                                                             processed_and_dead):
    dead = processed_and_dead["dead"]
    job = replay.start(db_session, OPERATOR, Criteria(message_id=dead), "handler fixed",
                       pipeline_settings, now=clock())
    assert job.status == ReplayStatus.DONE  # one message: re-queued at once
    stored = inspect.message(dead)
    assert (stored.status, stored.attempts, stored.replay_job_id) == (
        MessageStatus.PENDING, 0, job.id)
    with handlers.using("refund", lambda ctx: None):
        assert worker.run_once().applied == 1
    assert inspect.effects(dead) == 1
    assert [a.replay_job_id for a in inspect.attempts(dead)][-1] == job.id
    assert AuditAction.PIPELINE_REPLAY_START in audit_actions(db_session)


def test_replaying_processed_messages_creates_no_new_effects(db_session, worker, inspect,
                                                             pipeline_settings, clock,
                                                             processed_and_dead):
    before = inspect.effects()
    with handlers.using("presentment", lambda ctx: None):
        for _ in range(2):  # idempotent: twice changes nothing either
            job = replay.start(db_session, OPERATOR, Criteria(type="presentment"), "check",
                               pipeline_settings, now=clock())
            replay.step_active(worker.database, pipeline_settings, now=clock())
            clock.advance(60)
            replay.step_active(worker.database, pipeline_settings, now=clock())
            report = worker.run_once()
            assert report.noop == 2
            db_session.expire_all()
            assert db_session.get(type(job), job.id).status == ReplayStatus.DONE
    assert inspect.effects() == before
    for message_id in processed_and_dead["applied"]:
        assert inspect.message(message_id).outcome == "applied"


def test_a_job_is_requeued_no_faster_than_the_rate(db_session, store, worker, clock,
                                                   pipeline_settings):
    for _ in range(12):
        store("presentment")
    worker.run_once()
    worker.run_once()
    job = replay.start(db_session, OPERATOR, Criteria(type="presentment"), "rate",
                       pipeline_settings, now=clock())
    database = worker.database
    assert replay.step_active(database, pipeline_settings, now=clock()) == {job.id: 1}
    clock.advance(1)  # 5 per second
    replay.step_active(database, pipeline_settings, now=clock())
    db_session.expire_all()
    assert db_session.get(type(job), job.id).done == 6
    clock.advance(100)
    replay.step_active(database, pipeline_settings, now=clock())
    replay.step_active(database, pipeline_settings, now=clock())
    replay.step_active(database, pipeline_settings, now=clock())
    db_session.expire_all()
    finished = db_session.get(type(job), job.id)
    assert (finished.done, finished.total, finished.status) == (12, 12, ReplayStatus.DONE)
    assert AuditAction.PIPELINE_REPLAY_COMPLETE in audit_actions(db_session)


def test_a_cancelled_job_stops_requeueing(db_session, store, worker, clock, pipeline_settings):
    for _ in range(8):
        store("presentment")
    worker.run_once()
    job = replay.start(db_session, OPERATOR, Criteria(type="presentment"), "oops",
                       pipeline_settings, now=clock())
    replay.step_active(worker.database, pipeline_settings, now=clock())
    replay.cancel(db_session, OPERATOR, job.id)
    clock.advance(100)
    assert replay.step_active(worker.database, pipeline_settings, now=clock()) == {}
    db_session.expire_all()
    cancelled = db_session.get(type(job), job.id)
    assert (cancelled.status, cancelled.done, cancelled.cancel_requested) == (
        ReplayStatus.CANCELLED, 1, True)
    assert AuditAction.PIPELINE_REPLAY_CANCEL in audit_actions(db_session)
    with pytest.raises(ReplayRefused, match="already cancelled"):
        replay.cancel(db_session, OPERATOR, job.id)


@pytest.mark.parametrize(("criteria", "reason", "message"), [
    (Criteria(type="presentment"), "", "a reason is required"),
    (Criteria(type="presentment"), "x" * 201, "longer than"),
    (Criteria(), "why", "choose at least one filter"),
    (Criteria(type="nothing_like_this"), "why", "no message matches"),
])
def test_start_refuses_unclear_requests(db_session, store, pipeline_settings, criteria,
                                        reason, message):
    store("presentment")
    with pytest.raises(ReplayRefused, match=message):
        replay.start(db_session, OPERATOR, criteria, reason, pipeline_settings)


def test_only_a_few_replays_may_run_at_once(db_session, store, pipeline_settings):
    store("presentment")
    for _ in range(pipeline_settings.replay_max_active):
        replay.start(db_session, OPERATOR, Criteria(type="presentment"), "again",
                     pipeline_settings)
    with pytest.raises(ReplayRefused, match="already running"):
        replay.start(db_session, OPERATOR, Criteria(type="presentment"), "again",
                     pipeline_settings)


def test_criteria_are_validated():
    with pytest.raises(ReplayRefused, match="status must be"):
        Criteria(status="processing")
    with pytest.raises(ReplayRefused, match="time range is empty"):
        now = dt.datetime.now(dt.UTC)
        Criteria(since=now, until=now)
    criteria = Criteria(type="refund", since=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    assert Criteria.from_dict(criteria.as_dict()) == criteria
