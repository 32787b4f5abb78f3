import threading
import time
import zlib
from collections import defaultdict

import pytest

from console.finci.contract import TokenStatus
from console.simulator.cards import CardBook
from console.simulator.runner import run_items, run_scenario
from console.simulator.scenarios import book_size_for
from console.simulator.sender import RetryPolicy
from tests.simulator.receiver import APPROVE, DECLINE, Reply

FAST_RETRY = RetryPolicy(max_attempts=4, base_s=0.01)


def run(receiver, secret, name, **kwargs):
    kwargs.setdefault("retry", FAST_RETRY)
    kwargs.setdefault("run_id", "t")
    return run_scenario(name, receiver.url, secret, **kwargs).summary()


def test_happy_path_is_delivered_and_acknowledged(receiver, secret):
    summary = run(receiver, secret, "happy-path", cards=6)
    assert summary["ended"] == "completed" and summary["problems"] == []
    assert summary["sent"] == summary["acknowledged"] == len(receiver.received)
    assert summary["answers"]["success"] == summary["answers"]["total"] > 0
    assert summary["advices"].get("Approved") == summary["answers"]["success"]
    assert summary["deliveries"]["4xx"] == summary["deliveries"]["5xx"] == 0
    assert summary["ack_latency_ms"]["count"] == summary["deliveries"]["total"]
    assert summary["ack_latency_ms"]["p50"] <= summary["ack_latency_ms"]["max"]
    # Per card, every follow-up arrives after its authorization's advice (clean delivery).
    advised = set()
    for message in receiver.messages():
        if message.is_advice:
            advised.add(message.id)
        elif message.authorization_id and not message.authorization_id.endswith("_unseen"):
            assert message.authorization_id in advised


def test_a_declining_console_gets_no_clearing_for_declined_authorizations(receiver, secret):
    receiver.policy = lambda _m: DECLINE
    summary = run(receiver, secret, "happy-path", cards=4)
    assert summary["answers"]["error"] == summary["answers"]["total"]
    assert set(summary["advices"]) <= {"InsufficientFunds", "DoNotHonor"}
    assert summary["skipped"] > 0
    assert not any(m.authorization_id for m in receiver.messages()
                   if m.type in ("presentment", "reversal", "refund"))


def test_timeout_storm_reports_how_many_were_answered_in_time(receiver, secret):
    # The console is slow for every third card: those answers miss the deadline.
    receiver.policy = lambda m: Reply(delay_s=0.35) if zlib.crc32(m.token_id.encode()) % 3 == 0 \
        else APPROVE
    summary = run(receiver, secret, "timeout-storm", cards=12, deadline_s=0.2)
    answers = summary["answers"]
    assert answers["total"] == 12 * 4
    assert answers["timeout"] > 0 and answers["in_time"] > 0
    assert answers["in_time"] + answers["timeout"] == answers["total"]
    assert summary["advices"]["InsufficientFunds"] == answers["timeout"]
    assert summary["deadline_s"] == 0.2
    assert receiver.max_in_flight >= 6  # the burst really is concurrent


def test_duplicate_flood_against_an_idempotent_receiver_finds_no_problem(receiver, secret):
    summary = run(receiver, secret, "duplicate-flood", cards=5)
    assert summary["problems"] == []
    assert summary["deliveries"]["duplicates"] >= summary["sent"]
    assert summary["bad_requests"]["sent"] == summary["bad_requests"]["rejected_4xx"] > 0
    bodies = defaultdict(set)
    for delivery in receiver.accepted():
        bodies[delivery.webhook_id].add(delivery.body)
    assert all(len(b) == 1 for b in bodies.values())
    assert max(len([d for d in receiver.accepted() if d.webhook_id == w]) for w in bodies) >= 2


def test_clearing_failures_are_all_delivered(receiver, secret):
    book = CardBook.seeded(1, book_size_for(4))
    summary = run(receiver, secret, "clearing-failures", cards=4, book=book)
    assert summary["problems"] == []
    assert any(m.token_id not in book for m in receiver.messages())
    presentments = [m for m in receiver.messages() if m.type == "presentment"]
    assert any(m.currency == "USD" for m in presentments)


def test_card_compromise_with_a_console_that_declines_is_clean(receiver, secret):
    compromised: set[str] = set()
    lock = threading.Lock()

    def policy(message):
        # A console that has stored the card_status message declines from then on.
        statuses = [m for m in receiver.messages() if m.type == "card_status"]
        with lock:
            compromised.update(m.token_id for m in statuses if m.token_status == "compromized")
            return DECLINE if message.token_id in compromised else APPROVE

    receiver.policy = policy
    book = CardBook.seeded(1, book_size_for(3))
    summary = run(receiver, secret, "card-compromise", cards=3, book=book)
    assert summary["problems"] == []
    assert summary["expectations"] == {"checked": 6, "unexpected": 0}
    assert summary["advices"]["DoNotHonor"] == 3
    # FINCI's own book now shows the cards compromised (the Card API would say so too).
    assert sum(c.token_status is TokenStatus.COMPROMIZED for c in book.cards()) == 3


def test_card_compromise_catches_a_console_that_keeps_approving(receiver, secret):
    summary = run(receiver, secret, "card-compromise", cards=2)
    assert summary["expectations"]["unexpected"] == 4
    assert summary["problems"]


def test_steady_runs_at_the_rate_for_the_duration(receiver, secret):
    started = time.monotonic()
    summary = run(receiver, secret, "steady", cards=5, rate=40, duration_s=0.5,
                  malformed_rate=0.0, delivery=None)
    elapsed = time.monotonic() - started
    assert summary["ended"] == "duration"
    assert 0.45 <= elapsed < 3
    # At most rate x duration new messages started, plus those finished in flight at the stop.
    assert 8 <= summary["sent"] <= 40 * 0.5 + 32 * 2
    assert summary["problems"] == []


def test_a_run_can_be_stopped_from_outside(receiver, secret):
    stop = threading.Event()
    timer = threading.Timer(0.2, stop.set)
    timer.start()
    try:
        summary = run(receiver, secret, "steady", cards=3, rate=20, stop=stop)
    finally:
        timer.cancel()
    assert summary["ended"] == "stopped" and summary["sent"] > 0


def test_a_4xx_to_a_finci_message_is_a_problem(receiver, secret):
    receiver.script = [Reply(status=400)] * 100
    summary = run(receiver, secret, "clearing-failures", cards=1,
                  retry=RetryPolicy(max_attempts=2, base_s=0))
    assert summary["deliveries"]["4xx"] > 0 and summary["gave_up"] > 0
    assert any("4xx" in p for p in summary["problems"])


def test_worker_errors_surface_in_the_caller(receiver, secret):
    class Broken:
        def play(self, _script):
            raise RuntimeError("boom")

    from console.simulator.scenarios import CardScript

    with pytest.raises(RuntimeError, match="boom"):
        run_items([CardScript("tok", ())] * 3, Broken(), threading.Event(), concurrency=2,
                  burst=True)


def test_an_endless_scenario_cannot_burst(receiver, secret):
    with pytest.raises(ValueError, match="burst"):
        run(receiver, secret, "steady", burst=True)
