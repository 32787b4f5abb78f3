"""Delivering webhooks the way FINCI does: signed, retried, duplicated, out of order, late.

:class:`Sender` plays one card's script: every message is signed with the Standard Webhooks
headers (``console.finci.webhook_signature.signed_headers``, FINCI.md B.1) and POSTed to
``{console}/webhooks/finci``. What it does per message is decided by the script's
:class:`~console.simulator.scenarios.Delivery` plans; what FINCI itself would do is fixed here:

- An authorization request is sent once and waited on for at most the deadline (FINCI's 3 s by
  default). HTTP 200 with ``{"status": "success"}`` in time is an approval; ``error``, any other
  status, an unreadable answer, or nothing in time is ``InsufficientFunds`` (FINCI.md A). It is
  never retried: once the deadline passes FINCI has already answered Mastercard.
- FINCI then sends the advice: the same body and ``id``, ``advice`` true, ``response_code``
  set, under a new ``webhook-id`` (B.2).
- Every other message, advices included, is retried after any non-2xx answer or transport
  failure, with exponential backoff (honouring ``Retry-After``), until :class:`RetryPolicy`'s
  last attempt; then FINCI gives up. Each retry keeps the webhook-id and body and is signed
  afresh with the current time, as a real retry would be.
- Follow-ups of an authorization FINCI declined (presentment, reversal, refund) are not sent.

Nothing is logged here: bodies carry merchant data, and the report holds the counts.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit

import requests

from console.finci import contract
from console.finci.contract import ResponseCode
from console.finci.webhook_signature import WebhookSecret, signed_headers
from console.simulator.report import Report
from console.simulator.scenarios import (
    PLAIN,
    Answer,
    BadKind,
    BadRequest,
    CardScript,
    Delivery,
    Step,
    StepKind,
    advice_body,
    encode,
    message_body,
    stamp,
)

WEBHOOK_PATH: Final = "/webhooks/finci"
_LOOPBACK: Final = frozenset({"127.0.0.1", "localhost", "::1"})
# Not FINCI's key: whatever it signs must be refused.
_IMPOSTOR_SECRET: Final = WebhookSecret(hashlib.sha256(b"not-finci-simulator-impostor").digest())


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """FINCI's retries of an unacknowledged message (its real schedule is not documented)."""

    max_attempts: int = 6
    base_s: float = 1.0
    factor: float = 2.0
    max_backoff_s: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_s < 0 or self.factor < 1 or self.max_backoff_s < 0:
            raise ValueError("backoff must be non-negative and non-shrinking")

    def backoff(self, failed_attempts: int, retry_after: float | None = None) -> float:
        """Wait before the next attempt after ``failed_attempts`` failures (1, 2, ...)."""
        delay = min(self.max_backoff_s, self.base_s * self.factor ** (failed_attempts - 1))
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_backoff_s))
        return delay


class Pacer:
    """Spaces new messages to at most ``rate`` per second across all threads (None: no limit).

    Once ``stop`` is set it lets everything through, so in-flight scripts finish quickly.
    """

    def __init__(
        self,
        rate: float | None,
        stop: threading.Event,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive")
        self._interval = 1.0 / rate if rate else 0.0
        self._stop = stop
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._next = monotonic()

    def acquire(self) -> None:
        if not self._interval:
            return
        with self._lock:
            now = self._monotonic()
            slot = max(now, self._next)
            self._next = slot + self._interval
        if slot > now:
            self._stop.wait(slot - now)


@dataclass(frozen=True, slots=True)
class Exchange:
    """One HTTP POST as sent and answered, for an ``observer`` (the evidence pack records
    them). ``headers`` and ``data`` are exactly what went out, signature included: whoever
    keeps them must mask the signature."""

    webhook_id: str
    headers: dict[str, str]
    data: bytes
    status: int | None
    body: bytes
    latency_s: float
    sent_at: float  # the sender's clock (Unix seconds) when the POST started


@dataclass(frozen=True, slots=True)
class _Result:
    status: int | None
    body: bytes
    latency_s: float
    retry_after: float | None


def webhook_url(console_url: str) -> str:
    """``{console}/webhooks/finci``; HTTPS, or plain HTTP to loopback only (local runs)."""
    parts = urlsplit(console_url)
    local = parts.scheme == "http" and parts.hostname in _LOOPBACK
    if not ((parts.scheme == "https" and parts.hostname) or local) or parts.query or parts.fragment:
        raise ValueError("console URL must be https://..., or http:// to a loopback address")
    if parts.username or parts.password:
        raise ValueError("console URL must not carry credentials")
    return console_url.rstrip("/") + WEBHOOK_PATH


def classify_answer(status: int | None, body: bytes, latency_s: float, deadline_s: float) -> Answer:
    """How FINCI reads the console's answer to an authorization request (B.4)."""
    if status is None or latency_s > deadline_s:
        return Answer.TIMEOUT
    if status != 200:
        return Answer.INVALID
    try:
        document = json.loads(body)
    except ValueError:
        return Answer.INVALID
    answer = document.get("status") if isinstance(document, dict) else None
    if answer == contract.AUTHORIZATION_APPROVE["status"]:
        return Answer.SUCCESS
    if answer == contract.AUTHORIZATION_DECLINE["status"]:
        return Answer.ERROR
    return Answer.INVALID


def response_code_for(answer: Answer) -> str:
    return (
        ResponseCode.APPROVED.value
        if answer is Answer.SUCCESS
        else ResponseCode.INSUFFICIENT_FUNDS.value
    )


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    return float(value) if value.isascii() and value.isdigit() else None


class Sender:
    """Delivers scripts to one console. Thread-safe: one instance serves all worker threads."""

    def __init__(
        self,
        console_url: str,
        secret: WebhookSecret | str,
        report: Report,
        *,
        deadline_s: float = contract.AUTHORIZATION_ANSWER_DEADLINE_SECONDS,
        retry: RetryPolicy | None = None,
        timeout_s: float = 10.0,
        verify: bool | str = True,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], object] | None = None,
        stop: threading.Event | None = None,
        pacer: Pacer | None = None,
        on_card_status: Callable[[str, str, str | None], object] | None = None,
        observer: Callable[[Exchange], object] | None = None,
    ) -> None:
        if deadline_s <= 0:
            raise ValueError("deadline_s must be positive")
        self._url = webhook_url(console_url)
        self._secret = secret if isinstance(secret, WebhookSecret) else WebhookSecret.parse(secret)
        self._report = report
        self._deadline_s = deadline_s
        self._retry = retry or RetryPolicy()
        self._timeout_s = timeout_s
        self._verify = verify
        self._clock = clock
        self._stop = stop or threading.Event()
        # ``sleep`` returns truthy when the run was stopped meanwhile (Event.wait's contract).
        self._sleep = sleep if sleep is not None else self._stop.wait
        self._pacer = pacer
        self._on_card_status = on_card_status
        self._observer = observer
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Sender(url={self._url!r})"

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def close(self) -> None:
        with self._sessions_lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()

    def __enter__(self) -> Sender:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- one card's script ----------------------------------------------------------------------

    def play(self, script: CardScript) -> dict[str, str]:
        """Deliver a script in order; return ``{authorization id: response_code}``.

        Stops between steps once the run is stopped (never between a request and its advice).
        A message planned as held goes out right after the card's next message, or at the end.
        """
        outcomes: dict[str, str] = {}
        held: list[tuple[str, bytes, Delivery]] = []

        def flush() -> None:
            while held:
                self._deliver(*held.pop(0))

        def emit(webhook_id: str, build: Callable[[], dict[str, Any]], delivery: Delivery,
                 label: str) -> None:
            self._report.message(label)
            if delivery.hold:
                self._report.held()
                held.append((webhook_id, encode(build()), delivery))
                return
            # Wait for the rate limit *before* stamping created_at: a message waiting in our own
            # queue is not one FINCI created earlier, and would show as delivery latency.
            self._pace()
            self._deliver(webhook_id, encode(build()), delivery, paced=True)
            flush()

        for step in script.steps:
            if self.stopped:
                break
            if step.after_approval_of is not None and (
                outcomes.get(step.after_approval_of) != ResponseCode.APPROVED
            ):
                self._report.skipped()
                continue
            if step.kind is StepKind.AUTHORIZATION:
                answer = self.ask(step)
                code = response_code_for(answer)
                outcomes[step.message_id] = code
                flush()
                if step.advice_webhook_id is None:
                    raise ValueError("an authorization step needs an advice_webhook_id")
                emit(step.advice_webhook_id,
                     lambda step=step, code=code: advice_body(step, code, self._now()),
                     step.advice_delivery, "authorization_advice")
                self._report.advice(code)
                continue
            if step.kind is StepKind.CARD_STATUS and self._on_card_status is not None:
                # FINCI changes its own record first, then tells the integrator.
                self._on_card_status(
                    step.body["token_id"], step.body["token_status"], step.body.get("token_stage")
                )
            emit(step.webhook_id, lambda step=step: message_body(step, self._now()),
                 step.delivery, step.kind.value)
            if step.kind is StepKind.FINCI_ADVICE:
                self._report.advice(step.body["response_code"])
        flush()
        return outcomes

    # --- authorization requests -----------------------------------------------------------------

    def ask(self, step: Step) -> Answer:
        """Send an authorization request (and its planned duplicates); FINCI's reading of the
        first delivery's answer decides the outcome."""
        self._report.message("authorization_request")
        self._pace()
        data = encode(message_body(step, self._now()))
        delivery = step.delivery
        racers = self._race(step.webhook_id, data, delivery, request=True)
        answer, latency = self._ask_once(step.webhook_id, data, duplicate=False)
        self._report.answer(answer, latency, step.expect)
        copies = [] if delivery.race else [
            self._ask_once(step.webhook_id, data, duplicate=True)[0]
            for _ in range(delivery.copies - 1)
        ]
        for racer in racers:
            racer.join()
            copies.append(racer.answer)
        for copy in copies:
            self._report.duplicate_answer(answer, copy)
        return answer

    def _ask_once(self, webhook_id: str, data: bytes, *, duplicate: bool,
                  session: requests.Session | None = None) -> tuple[Answer, float]:
        result = self._post(webhook_id, data, self._deadline_s, session)
        self._report.delivery(result.status, result.latency_s, duplicate=duplicate)
        return classify_answer(result.status, result.body, result.latency_s,
                               self._deadline_s), result.latency_s

    # --- every other message ----------------------------------------------------------------------

    def deliver(self, webhook_id: str, data: bytes, delivery: Delivery = PLAIN) -> bool:
        """Deliver one message as planned (public for tests and tools); True if acknowledged."""
        return self._deliver(webhook_id, data, delivery)

    def _pace(self) -> None:
        if self._pacer is not None:
            self._pacer.acquire()

    def _deliver(self, webhook_id: str, data: bytes, delivery: Delivery, *,
                 paced: bool = False) -> bool:
        if delivery.delay_s:
            self._report.delayed()
            self._sleep(delivery.delay_s)
        racers = self._race(webhook_id, data, delivery, request=False)
        if not paced:
            self._pace()
        acknowledged = self._with_retries(webhook_id, data)
        if not delivery.race:
            for _ in range(delivery.copies - 1):
                self._once(webhook_id, data, duplicate=True)
        for racer in racers:
            racer.join()
        return acknowledged

    def _with_retries(self, webhook_id: str, data: bytes) -> bool:
        attempt = 0
        while True:
            attempt += 1
            result = self._post(webhook_id, data, self._timeout_s)
            self._report.delivery(result.status, result.latency_s, retry=attempt > 1)
            if result.status is not None and 200 <= result.status < 300:
                self._report.acknowledged()
                return True
            if attempt >= self._retry.max_attempts:
                self._report.gave_up()
                return False
            if self._sleep(self._retry.backoff(attempt, result.retry_after)) or self.stopped:
                self._report.abandoned()
                return False

    def _once(self, webhook_id: str, data: bytes, *, duplicate: bool,
              session: requests.Session | None = None) -> int | None:
        result = self._post(webhook_id, data, self._timeout_s, session)
        self._report.delivery(result.status, result.latency_s, duplicate=duplicate)
        return result.status

    def _race(self, webhook_id: str, data: bytes, delivery: Delivery, *, request: bool
              ) -> list[_Racer]:
        if not delivery.race:
            return []
        racers = [_Racer(self, webhook_id, data, request) for _ in range(delivery.copies - 1)]
        for racer in racers:
            racer.start()
        return racers

    # --- requests the console must refuse ---------------------------------------------------

    def send_bad(self, bad: BadRequest) -> int | None:
        """Send one request that is not FINCI's, or not well formed; return the HTTP status."""
        now = self._clock()
        body = encode(stamp(bad.body, datetime.fromtimestamp(now, UTC)))
        timestamp = int(now)

        def signed(data: bytes, at: int = timestamp) -> dict[str, str]:
            return signed_headers(self._secret, bad.webhook_id, at, data)

        data = body
        if bad.kind is BadKind.WRONG_SECRET:
            headers = signed_headers(_IMPOSTOR_SECRET, bad.webhook_id, timestamp, body)
        elif bad.kind is BadKind.STALE_TIMESTAMP:
            headers = signed(body, timestamp - 2 * contract.WEBHOOK_TIMESTAMP_TOLERANCE_SECONDS)
        elif bad.kind is BadKind.MISSING_SIGNATURE:
            headers = signed(body)
            del headers[contract.HEADER_WEBHOOK_SIGNATURE]
        elif bad.kind is BadKind.TAMPERED_BODY:
            headers = signed(body)  # signed before the change below
            data = body.replace(b'"id":"', b'"id":"x', 1)
        elif bad.kind is BadKind.NOT_JSON:
            data = body[: len(body) // 2]
            headers = signed(data)
        elif bad.kind is BadKind.SCHEMA_INVALID:
            data = encode({**json.loads(body), "amount": "12.50", "currency": "eur"})
            headers = signed(data)
        else:  # BadKind.TOO_LARGE
            data = encode({**json.loads(body), "padding": "x" * contract.WEBHOOK_MAX_BODY_BYTES})
            headers = signed(data)
        if self._pacer is not None:
            self._pacer.acquire()
        result = self._post_raw(headers, data, self._timeout_s, None)
        self._report.bad(bad.kind, result.status)
        return result.status

    # --- transport --------------------------------------------------------------------------

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers.update({"User-Agent": "finci-simulator"})
            self._local.session = session
            with self._sessions_lock:
                self._sessions.append(session)
        return session

    def _post(self, webhook_id: str, data: bytes, timeout_s: float,
              session: requests.Session | None = None) -> _Result:
        headers = signed_headers(self._secret, webhook_id, int(self._clock()), data)
        return self._post_raw(headers, data, timeout_s, session)

    def _post_raw(self, headers: dict[str, str], data: bytes, timeout_s: float,
                  session: requests.Session | None) -> _Result:
        headers = {**headers, "Content-Type": "application/json"}
        sent_at = self._clock()
        started = time.perf_counter()
        try:
            response = (session or self._session()).post(
                self._url, data=data, headers=headers, timeout=(timeout_s, timeout_s),
                allow_redirects=False, verify=self._verify,
            )
        except requests.RequestException:
            result = _Result(None, b"", time.perf_counter() - started, None)
        else:
            result = _Result(response.status_code, response.content,
                             time.perf_counter() - started, _retry_after(response))
        if self._observer is not None:
            self._observer(Exchange(headers.get(contract.HEADER_WEBHOOK_ID, ""), headers, data,
                                    result.status, result.body, result.latency_s, sent_at))
        return result


class _Racer(threading.Thread):
    """A duplicate delivery sent at the same moment as the original, on its own connection."""

    def __init__(self, sender: Sender, webhook_id: str, data: bytes, request: bool) -> None:
        super().__init__(daemon=True, name="finci-sim-duplicate")
        self._sender = sender
        self._webhook_id = webhook_id
        self._data = data
        self._request = request
        self.answer = Answer.TIMEOUT

    def run(self) -> None:
        with requests.Session() as session:
            if self._request:
                self.answer, _ = self._sender._ask_once(
                    self._webhook_id, self._data, duplicate=True, session=session
                )
            else:
                self._sender._once(self._webhook_id, self._data, duplicate=True, session=session)
