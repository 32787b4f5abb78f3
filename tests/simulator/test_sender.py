import json
import random
import threading
import time
from dataclasses import replace
from datetime import datetime

import pytest

from console.finci import contract
from console.finci.contract import TokenStatus
from console.simulator.cards import seeded_cards
from console.simulator.report import Report
from console.simulator.scenarios import (
    Answer,
    BadKind,
    BadRequest,
    Delivery,
    Ids,
    ScriptBuilder,
    StepKind,
    encode,
)
from console.simulator.sender import (
    Pacer,
    RetryPolicy,
    classify_answer,
    response_code_for,
    webhook_url,
)
from tests.simulator.receiver import APPROVE, DECLINE, Reply

CARD = seeded_cards(5, 1)[0]


def builder(run_id="s") -> ScriptBuilder:
    return ScriptBuilder(CARD, random.Random(1), Ids(run_id))


def purchase(**auth_delivery):
    """An authorization and its presentment; ``auth_delivery`` plans the request/advice."""
    script = builder()
    auth = script.authorize(1234)
    script.follow_up(StepKind.PRESENTMENT, 1234, auth)
    steps = list(script.done().steps)
    steps[0] = replace(steps[0], **auth_delivery)
    return replace(script.done(), steps=tuple(steps)), auth


def kinds(receiver):
    return [(m.type, m.advice) for m in receiver.messages()]


# --- authorization: request, answer, advice ---------------------------------------------------


def test_the_advice_follows_the_request_with_the_same_id_and_a_new_webhook_id(receiver,
                                                                             make_sender):
    sender, report = make_sender()
    script, auth = purchase()
    assert sender.play(script) == {auth.message_id: "Approved"}
    request, advice, presentment = receiver.accepted()
    assert request.message.is_authorization_request and advice.message.is_advice
    assert request.message.id == advice.message.id == auth.message_id
    assert request.webhook_id == auth.webhook_id
    assert advice.webhook_id == auth.advice_webhook_id != request.webhook_id
    assert advice.message.response_code == "Approved"
    assert "response_code" not in request.document
    # Apart from advice/response_code/created_at, the advice repeats the request exactly.
    strip = {"advice", "response_code", "created_at"}
    assert {k: v for k, v in request.document.items() if k not in strip} == {
        k: v for k, v in advice.document.items() if k not in strip}
    assert presentment.message.authorization_id == auth.message_id
    summary = report.summary()
    assert summary["answers"]["success"] == 1 and summary["advices"] == {"Approved": 1}
    assert summary["sent"] == summary["acknowledged"] == 3 and not summary["problems"]


@pytest.mark.parametrize("reply, answer", [
    (DECLINE, Answer.ERROR),
    (Reply(status=500), Answer.INVALID),
    (Reply(status=503, body=contract.AUTHORIZATION_APPROVE_BODY), Answer.INVALID),
    (Reply(body=b"not json"), Answer.INVALID),
    (Reply(body=b'{"status": "maybe"}'), Answer.INVALID),
    (Reply(body=b'["success"]'), Answer.INVALID),
])
def test_anything_but_a_timely_success_becomes_insufficient_funds(receiver, make_sender, reply,
                                                                  answer):
    receiver.policy = lambda _m: reply
    sender, report = make_sender()
    script, auth = purchase()
    assert sender.play(script) == {auth.message_id: "InsufficientFunds"}
    assert kinds(receiver) == [("authorization", False), ("authorization", True)]
    assert receiver.messages()[1].response_code == "InsufficientFunds"
    summary = report.summary()
    assert summary["answers"][answer.value] == 1
    assert summary["skipped"] == 1  # FINCI does not clear a declined authorization


def test_no_answer_within_the_deadline_is_a_timeout_and_the_advice_still_comes(receiver,
                                                                               make_sender):
    receiver.policy = lambda _m: Reply(delay_s=0.4)
    sender, report = make_sender(deadline_s=0.15)
    script, auth = purchase()
    started = time.monotonic()
    assert sender.play(script) == {auth.message_id: "InsufficientFunds"}
    assert time.monotonic() - started < 0.4  # FINCI did not wait for the late answer
    deadline = time.monotonic() + 2
    while len(receiver.received) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    advice = next(m for m in receiver.messages() if m.is_advice)
    assert advice.response_code == "InsufficientFunds"
    summary = report.summary()
    assert summary["answers"]["timeout"] == 1 and summary["answers"]["in_time"] == 0
    assert summary["deliveries"]["no_response"] == 1


def test_the_default_deadline_is_finci_three_seconds(receiver, secret):
    from console.simulator.sender import Sender

    report = Report(scenario="t", seed=0, run_id="t", deadline_s=3)
    with Sender(receiver.url, secret, report) as sender:
        assert sender._deadline_s == contract.AUTHORIZATION_ANSWER_DEADLINE_SECONDS == 3


@pytest.mark.parametrize("status, body, latency, answer", [
    (200, b'{"status":"success"}', 0.1, Answer.SUCCESS),
    (200, b'{"status":"error"}', 0.1, Answer.ERROR),
    (200, b'{"status":"success"}', 3.01, Answer.TIMEOUT),  # answered, but too late
    (None, b"", 3.0, Answer.TIMEOUT),
    (201, b'{"status":"success"}', 0.1, Answer.INVALID),
])
def test_classify_answer(status, body, latency, answer):
    assert classify_answer(status, body, latency, 3.0) is answer
    assert response_code_for(answer) == ("Approved" if answer is Answer.SUCCESS
                                         else "InsufficientFunds")


def test_an_expected_decline_that_is_approved_is_reported(receiver, make_sender):
    sender, report = make_sender()
    script = builder()
    script.authorize(500, expect=Answer.ERROR)
    sender.play(script.done())
    summary = report.summary()
    assert summary["expectations"] == {"checked": 1, "unexpected": 1}
    assert summary["problems"]


# --- duplicates -------------------------------------------------------------------------------


@pytest.mark.parametrize("race", [False, True])
def test_duplicates_carry_the_same_webhook_id_and_the_same_body(receiver, make_sender, race):
    sender, report = make_sender()
    script = builder()
    script.card_status(TokenStatus.ACTIVE)
    steps = script.done().steps
    step = replace(steps[0], delivery=Delivery(copies=3, race=race))
    sender.play(replace(script.done(), steps=(step,)))
    got = receiver.accepted()
    assert len(got) == 3
    assert {r.webhook_id for r in got} == {step.webhook_id}
    assert len({r.body for r in got}) == 1
    summary = report.summary()
    assert summary["sent"] == 1 and summary["deliveries"]["duplicates"] == 2


@pytest.mark.parametrize("race", [False, True])
def test_duplicate_requests_must_get_the_same_answer(receiver, make_sender, race):
    answers = iter([APPROVE, DECLINE])
    lock = threading.Lock()
    # Raced copies meet here, so they are provably in flight together; sequential ones pass.
    together = threading.Barrier(2, timeout=10) if race else None

    def flip_flop(_message):
        if together is not None:
            together.wait()
        with lock:
            return next(answers, DECLINE)

    receiver.policy = flip_flop
    # The judgement under test is the answers, not the clock: a deadline no loaded CI machine
    # misses, so neither copy can read as a timeout (which is not a mismatch).
    sender, report = make_sender(deadline_s=30)
    script, _auth = purchase(delivery=Delivery(copies=2, race=race))
    sender.play(script)
    requests_seen = [r for r in receiver.accepted() if r.message.is_authorization_request]
    assert len(requests_seen) == 2 and len({r.webhook_id for r in requests_seen}) == 1
    summary = report.summary()
    assert summary["duplicate_answer_mismatches"] == 1
    assert summary["answers"]["total"] == 1  # the outcome comes from the first delivery only


# --- retries ----------------------------------------------------------------------------------


def test_non_2xx_is_retried_with_exponential_backoff_then_acknowledged(receiver, make_sender,
                                                                      sleeps):
    receiver.script = [Reply(status=503), Reply(status=500, body=b"")]
    sender, report = make_sender(retry=RetryPolicy(max_attempts=5, base_s=0.25))
    script = builder()
    script.card_status(TokenStatus.ACTIVE)
    assert sender.play(script.done()) == {}
    got = receiver.received
    assert [r.status for r in got] == [503, 500, 200]
    assert len({r.webhook_id for r in got}) == 1 and len({r.body for r in got}) == 1
    assert sleeps == [0.25, 0.5]
    summary = report.summary()
    assert summary["deliveries"]["retries"] == 2 and summary["acknowledged"] == 1
    assert summary["deliveries"]["5xx"] == 2 and not summary["problems"]


def test_finci_gives_up_after_the_last_attempt(receiver, make_sender, sleeps):
    receiver.script = [Reply(status=503)] * 5
    sender, report = make_sender(retry=RetryPolicy(max_attempts=3, base_s=1.0))
    script = builder()
    script.card_status(TokenStatus.ACTIVE)
    sender.play(script.done())
    assert len(receiver.received) == 3 and sleeps == [1.0, 2.0]
    summary = report.summary()
    assert summary["gave_up"] == 1 and summary["problems"]


def test_retry_after_is_honoured_up_to_the_cap(receiver, make_sender, sleeps):
    receiver.script = [Reply(status=503, headers={"Retry-After": "7"}),
                       Reply(status=503, headers={"Retry-After": "999"})]
    sender, _ = make_sender(retry=RetryPolicy(max_attempts=3, base_s=1.0, max_backoff_s=30))
    script = builder()
    script.card_status(TokenStatus.ACTIVE)
    sender.play(script.done())
    assert sleeps == [7.0, 30.0]


def test_backoff_doubles_and_is_capped():
    policy = RetryPolicy(base_s=1, factor=2, max_backoff_s=10)
    assert [policy.backoff(n) for n in range(1, 6)] == [1, 2, 4, 8, 10]
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


def test_requests_are_never_retried(receiver, make_sender):
    receiver.policy = lambda _m: Reply(status=503)
    sender, _ = make_sender()
    script, _ = purchase()
    sender.play(script)
    assert sum(1 for m in receiver.messages() if m.is_authorization_request) == 1


def test_a_stop_during_backoff_abandons_the_message(receiver, make_sender):
    receiver.script = [Reply(status=503)] * 3
    stop = threading.Event()
    sender, report = make_sender(sleep=lambda _s: stop.set() or True, stop=stop)
    script = builder()
    script.card_status(TokenStatus.ACTIVE)
    script.card_status(TokenStatus.ACTIVE)
    sender.play(script.done())
    summary = report.summary()
    assert summary["abandoned"] == 1 and summary["sent"] == 1 and not summary["problems"]


# --- ordering and timing ----------------------------------------------------------------------


def test_a_held_advice_arrives_after_the_presentment(receiver, make_sender):
    sender, report = make_sender()
    script, _ = purchase(advice_delivery=Delivery(hold=True))
    sender.play(script)
    assert kinds(receiver) == [("authorization", False), ("presentment", None),
                               ("authorization", True)]
    advice, presentment = receiver.messages()[2], receiver.messages()[1]
    assert advice.created_at <= presentment.created_at  # created first, delivered later
    assert report.summary()["deliveries"]["held"] == 1


def test_a_held_last_message_is_still_delivered(receiver, make_sender):
    sender, _ = make_sender()
    script = builder()
    script.card_status(TokenStatus.ACTIVE)
    step = replace(script.done().steps[0], delivery=Delivery(hold=True))
    sender.play(replace(script.done(), steps=(step,)))
    assert len(receiver.accepted()) == 1


def test_a_delayed_message_waits_before_its_first_attempt(receiver, make_sender, sleeps):
    sender, report = make_sender()
    script = builder()
    script.card_status(TokenStatus.ACTIVE)
    step = replace(script.done().steps[0], delivery=Delivery(delay_s=0.75))
    sender.play(replace(script.done(), steps=(step,)))
    assert sleeps == [0.75] and report.summary()["deliveries"]["delayed"] == 1


def test_card_status_changes_reach_finci_own_book_before_the_webhook(receiver, make_sender):
    seen = []
    sender, _ = make_sender(on_card_status=lambda *args: seen.append(
        (args, len(receiver.received))))
    script = builder()
    script.card_status(TokenStatus.COMPROMIZED)
    sender.play(script.done())
    assert seen == [((CARD.token_id, "compromized", CARD.token_stage.value), 0)]


def test_a_finci_decided_advice_has_no_request_before_it(receiver, make_sender):
    sender, report = make_sender()
    script = builder()
    script.finci_advice(700, "DoNotHonor")
    sender.play(script.done())
    (advice,) = receiver.messages()
    assert advice.is_advice and advice.response_code == "DoNotHonor"
    assert report.summary()["advices"] == {"DoNotHonor": 1}


def test_the_pacer_spaces_messages():
    stop = threading.Event()
    pacer = Pacer(20.0, stop)
    started = time.monotonic()
    for _ in range(5):
        pacer.acquire()
    assert time.monotonic() - started >= 0.19
    stop.set()
    started = time.monotonic()
    for _ in range(50):
        pacer.acquire()  # released once stopped
    assert time.monotonic() - started < 0.1


def test_a_stopped_sender_starts_no_new_step(receiver, make_sender):
    stop = threading.Event()
    stop.set()
    sender, _ = make_sender(stop=stop)
    script, _ = purchase()
    assert sender.play(script) == {}
    assert receiver.received == []


# --- requests the console must refuse ---------------------------------------------------------


@pytest.mark.parametrize("kind", list(BadKind))
def test_bad_requests_are_refused_and_counted(receiver, make_sender, kind):
    sender, report = make_sender()
    script, _ = purchase()
    body = script.steps[1].body
    status = sender.send_bad(BadRequest(kind, body, "msg_bad_1"))
    assert 400 <= status < 500
    summary = report.summary()
    assert summary["bad_requests"]["rejected_4xx"] == 1
    assert summary["bad_requests"]["by_kind"] == {kind.value: 1}
    assert summary["sent"] == 0 and summary["deliveries"]["total"] == 0


def test_a_bad_request_that_is_accepted_is_a_problem(make_sender, receiver, monkeypatch):
    import console.simulator.sender as sender_module

    sender, report = make_sender()
    # Impersonate a console that accepts anything: sign the "wrong secret" with the right one.
    monkeypatch.setattr(sender_module, "_IMPOSTOR_SECRET", receiver.secret)
    script, _ = purchase()
    assert sender.send_bad(BadRequest(BadKind.WRONG_SECRET, script.steps[1].body, "m")) == 200
    assert report.summary()["bad_requests"]["accepted"] == 1
    assert report.summary()["problems"]


def test_every_delivery_is_signed_for_the_body_sent(receiver, make_sender):
    sender, _ = make_sender()
    script, _ = purchase()
    sender.play(script)
    # The receiver verified each one with console.finci.webhook_signature.verify.
    assert [r.status for r in receiver.received] == [200, 200, 200]
    assert all(r.signature.startswith("v1,") for r in receiver.received)


@pytest.mark.parametrize("url", ["http://example.com", "ftp://127.0.0.1", "https://u:p@x.io",
                                 "http://127.0.0.1?x=1"])
def test_console_url_must_be_https_or_loopback_http(url):
    with pytest.raises(ValueError):
        webhook_url(url)


def test_webhook_url():
    assert webhook_url("https://console.example/") == "https://console.example/webhooks/finci"
    assert webhook_url("http://127.0.0.1:8000") == "http://127.0.0.1:8000/webhooks/finci"


def test_encode_is_compact_json():
    assert encode({"a": 1, "b": "é"}) == json.dumps({"a": 1, "b": "é"}, separators=(",", ":"),
                                                    ensure_ascii=False).encode()


def test_created_at_is_stamped_after_waiting_for_the_rate_limit(receiver, make_sender):
    # Messages queued behind our own pacer were not "created by FINCI" while they waited; if
    # they were stamped first, the console would report the queue as delivery latency.
    stop = threading.Event()
    sender, _ = make_sender(pacer=Pacer(6.0, stop))
    scripts = [purchase()[0] for _ in range(3)]
    threads = [threading.Thread(target=sender.play, args=(script,)) for script in scripts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    wall_minus_monotonic = time.time() - time.monotonic()
    received = receiver.accepted()
    assert len(received) >= 6
    for delivery in received:
        created = datetime.fromisoformat(delivery.document["created_at"].replace("Z", "+00:00"))
        lag = delivery.at + wall_minus_monotonic - created.timestamp()
        assert lag < 0.15, f"{delivery.document['type']} arrived {lag:.3f}s after created_at"


def test_an_observer_sees_every_post_as_sent_and_answered(receiver, make_sender):
    seen = []
    sender, _report = make_sender(observer=seen.append)
    script, auth = purchase()
    sender.play(script)
    assert [e.webhook_id for e in seen] == [s for s in (
        auth.webhook_id, auth.advice_webhook_id, script.steps[1].webhook_id)]
    request = seen[0]
    assert request.status == 200 and b"success" in request.body and request.latency_s > 0
    assert request.headers["webhook-signature"].startswith("v1,") and request.data
    assert request.sent_at > 0
