"""The worker: handlers, no-op and parked outcomes, retries, dead letters, leases, pause."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from console.audit import Actor, AuditAction, record
from console.audit.models import AuditEvent
from console.flows.services import Flow, set_flow
from console.ingress.models import MessageStatus
from console.pipeline import handlers
from console.pipeline.models import Outcome
from console.pipeline.worker import Worker, backoff_delay
from console.security.redaction import find_pans


def recording_handler(seen: list):
    def handle(ctx: handlers.Context):
        seen.append(ctx.message)
        return handlers.Result(summary=f"posted {ctx.message.id}")
    return handle


def failing(times: int, exc: type[Exception] = RuntimeError):
    calls = {"n": 0}

    def handle(ctx: handlers.Context):
        calls["n"] += 1
        if calls["n"] <= times:
            raise exc(f"declined card 4111111111111111 (attempt {calls['n']})")
        return None
    handle.calls = calls  # type: ignore[attr-defined]
    return handle


def test_a_type_without_handler_is_a_recorded_no_op(worker, store, inspect):
    message_id = store("reversal")
    report = worker.run_once()
    assert (report.claimed, report.no_handler) == (1, 1)
    stored = inspect.message(message_id)
    assert (stored.status, stored.outcome) == (MessageStatus.PROCESSED, Outcome.NO_HANDLER)
    assert [a.outcome for a in inspect.attempts(message_id)] == [Outcome.NO_HANDLER]
    assert inspect.effects(message_id) == 0


def test_a_registered_handler_applies_the_effect_once_with_the_masked_message(
        worker, store, inspect):
    seen: list = []
    message_id = store("presentment")
    with handlers.using("presentment", recording_handler(seen), name="test.post"):
        assert worker.run_once().applied == 1
        assert worker.run_once().claimed == 0
    stored = inspect.message(message_id)
    assert (stored.status, stored.outcome) == (MessageStatus.PROCESSED, Outcome.APPLIED)
    assert stored.lease_token is None
    assert inspect.effects(message_id) == 1
    assert len(seen) == 1
    assert seen[0].raw["card_reference"] == "411111******1111"


def test_an_unknown_type_is_parked_not_dropped(worker, store, inspect):
    message_id = store(body={"type": "chargeback", "id": "cb_9",
                             "created_at": "2026-11-27T08:00:00Z"})
    assert worker.run_once().parked == 1
    stored = inspect.message(message_id)
    assert (stored.status, stored.outcome) == (MessageStatus.PARKED, Outcome.PARKED)


def test_a_handler_registered_for_an_unknown_type_is_used(worker, store, inspect):
    message_id = store(body={"type": "chargeback", "id": "cb_10",
                             "created_at": "2026-11-27T08:00:00Z"})
    with handlers.using("chargeback", lambda ctx: None):
        assert worker.run_once().applied == 1
    assert inspect.effects(message_id) == 1


def test_a_failure_is_retried_with_exponential_backoff(worker, store, inspect, clock):
    message_id = store()
    handle = failing(times=1)
    with handlers.using("presentment", handle):
        assert worker.run_once().failed == 1
        stored = inspect.message(message_id)
        assert (stored.status, stored.attempts) == (MessageStatus.PENDING, 1)
        assert stored.next_attempt_at == clock() + dt.timedelta(seconds=10)
        assert find_pans(stored.last_error) == []
        assert stored.last_error.startswith("RuntimeError: declined card 411111******1111")
        assert worker.run_once().claimed == 0  # not due yet
        clock.advance(10)
        assert worker.run_once().applied == 1
    assert [a.outcome for a in inspect.attempts(message_id)] == [Outcome.FAILED, Outcome.APPLIED]
    assert inspect.effects(message_id) == 1


def test_backoff_doubles_with_jitter_and_is_capped():
    assert backoff_delay(1, 2, 100, rand=lambda: 1.0) == 2
    assert backoff_delay(3, 2, 100, rand=lambda: 1.0) == 8
    assert backoff_delay(3, 2, 100, rand=lambda: 0.0) == 4
    assert backoff_delay(30, 2, 100, rand=lambda: 1.0) == 100


def test_a_poison_message_reaches_dead_letters_after_n_attempts_without_blocking_others(
        worker, store, inspect, clock, db_session):
    poison = store("refund")
    good = [store("presentment") for _ in range(3)]
    with handlers.using("refund", failing(times=99)), \
            handlers.using("presentment", lambda ctx: None):
        first = worker.run_once()
        assert (first.applied, first.failed) == (3, 1)
        for _ in range(2):
            clock.advance(1000)
            worker.run_once()
    stored = inspect.message(poison)
    assert (stored.status, stored.outcome, stored.attempts) == (MessageStatus.DEAD,
                                                                Outcome.DEAD, 3)
    assert [a.outcome for a in inspect.attempts(poison)] == [
        Outcome.FAILED, Outcome.FAILED, Outcome.DEAD]
    assert all(inspect.effects(g) == 1 for g in good)
    audit = db_session.scalars(select(AuditEvent).where(
        AuditEvent.action == AuditAction.PIPELINE_MESSAGE_DEAD_LETTER)).all()
    assert [(a.target_id, a.actor_id) for a in audit] == [(str(poison), "worker")]
    assert find_pans(audit[0].details) == []


def test_dead_letter_raised_by_a_handler_skips_the_retries(worker, store, inspect):
    message_id = store()
    with handlers.using("presentment", failing(times=5, exc=handlers.DeadLetter)):
        assert worker.run_once().dead == 1
    assert inspect.message(message_id).attempts == 1


def test_a_failing_handler_leaves_none_of_its_writes(worker, store, db_session):
    store()

    def half_done(ctx):
        record(ctx.session, actor=Actor.system("handler"),
               action=AuditAction.DEPLOYMENT_ENVIRONMENT_RECORD, details={"half": True})
        raise RuntimeError("then a bug")

    with handlers.using("presentment", half_done):
        worker.run_once()
    assert db_session.scalars(select(AuditEvent).where(
        AuditEvent.actor_id == "handler")).all() == []


def test_an_expired_claim_is_retaken_and_the_stale_worker_cannot_apply(
        worker, store, inspect, clock, test_database, pipeline_settings):
    message_id = store()
    stale_claims, _ = worker.claim()  # worker-a is killed (-9) before applying
    other = Worker(test_database, pipeline_settings, name="worker-b", clock=clock)
    assert other.run_once().claimed == 0  # lease still valid
    clock.advance(pipeline_settings.lease_s + 1)
    with handlers.using("presentment", lambda ctx: None):
        report = other.run_once()
        assert (report.expired, report.applied) == (1, 1)
        assert worker.apply(stale_claims[0]) is None  # fenced off by the lease token
    assert inspect.effects(message_id) == 1
    assert [(a.outcome, a.worker) for a in inspect.attempts(message_id)] == [
        (Outcome.LEASE_EXPIRED, "worker-a"), (Outcome.APPLIED, "worker-b")]
    assert inspect.message(message_id).attempts == 2


def test_a_message_that_keeps_killing_its_worker_is_dead_lettered(worker, store, inspect,
                                                                   clock, pipeline_settings):
    message_id = store()
    for _ in range(pipeline_settings.max_attempts):
        assert len(worker.claim()[0]) == 1  # claimed, then the worker dies
        clock.advance(pipeline_settings.lease_s + 1)
    report = worker.run_once()
    assert report.dead == 1
    assert inspect.message(message_id).status == MessageStatus.DEAD


def test_an_already_applied_message_is_a_no_op(worker, store, inspect, db_session):
    message_id = store()
    with handlers.using("presentment", lambda ctx: None):
        worker.run_once()
        stored = inspect.message(message_id)
        stored.status = MessageStatus.PENDING  # e.g. replayed
        db_session.flush()
        assert worker.run_once().noop == 1
    assert inspect.effects(message_id) == 1
    assert inspect.message(message_id).outcome == Outcome.APPLIED


def test_pausing_processing_stops_claims_while_ingress_keeps_storing(worker, store, inspect,
                                                                     db_session):
    set_flow(db_session, Actor.system("test"), Flow.PROCESSING, enabled=False,
             reason="incident drill")
    db_session.flush()
    message_id = store()
    report = worker.run_once()
    assert (report.claimed, report.paused) == (0, True)
    assert inspect.message(message_id).status == MessageStatus.PENDING
    set_flow(db_session, Actor.system("test"), Flow.PROCESSING, enabled=True, reason="over")
    db_session.flush()
    assert worker.run_once().no_handler == 1


def test_a_pause_mid_batch_hands_the_rest_back(worker, store, inspect, db_session):
    ids = [store() for _ in range(3)]

    def pause_after_first(ctx):
        set_flow(ctx.session, Actor.system("test"), Flow.PROCESSING, enabled=False,
                 reason="pause from inside")

    with handlers.using("presentment", pause_after_first):
        report = worker.run_once()
    assert (report.applied, report.released, report.paused) == (1, 2, True)
    statuses = [inspect.message(i) for i in ids[1:]]
    assert all(s.status == MessageStatus.PENDING and s.attempts == 0 for s in statuses)


def test_stopping_hands_back_unprocessed_claims(worker, store, inspect):
    ids = [store() for _ in range(2)]
    worker.stop.set()
    report = worker.run_once()
    assert report.released == 2
    assert all(inspect.message(i).status == MessageStatus.PENDING for i in ids)


def test_run_until_idle_drains_the_backlog(worker, store, inspect):
    ids = [store() for _ in range(25)]
    report = worker.run(until_idle=True)
    assert report.no_handler == 25
    assert all(inspect.message(i).status == MessageStatus.PROCESSED for i in ids)


def test_registering_a_second_handler_for_a_type_is_refused():
    handlers.add("test_type_x", lambda ctx: None, name="first")
    try:
        with pytest.raises(ValueError, match="already registered"):
            handlers.add("test_type_x", lambda ctx: None, name="second")
    finally:
        handlers.remove("test_type_x")
