"""Running a scenario: worker threads take card scripts and play them through one sender.

Cards run concurrently (up to ``concurrency`` at a time); each card's script runs in order.
In a burst every worker takes its first script and waits at a gate, then all start together.
A run ends when the work runs out, when ``duration_s`` passes, or when ``stop`` is set (the CLI
sets it on Ctrl-C): no new step starts, in-flight advices are still sent, pacing and delays are
dropped so the stop is quick, and pending retries are counted as abandoned.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Final

from console.finci import contract
from console.finci.webhook_signature import WebhookSecret
from console.simulator.cards import CardBook
from console.simulator.report import Report
from console.simulator.scenarios import (
    BadRequest,
    CardScript,
    DeliveryPolicy,
    WorkItem,
    get_scenario,
    run_book,
    work_items,
)
from console.simulator.sender import Pacer, RetryPolicy, Sender

# Beyond this many threads a burst measures the simulator, not the console.
MAX_CONCURRENCY: Final = 512
_GATE_TIMEOUT_S: Final = 30.0


class _Feed:
    """Hands out work items to workers, one at a time, until exhausted or stopped."""

    def __init__(self, items: Iterable[WorkItem], stop: threading.Event) -> None:
        self._items: Iterator[WorkItem] = iter(items)
        self._stop = stop
        self._lock = threading.Lock()

    def next(self) -> WorkItem | None:
        with self._lock:
            if self._stop.is_set():
                return None
            return next(self._items, None)


def run_items(
    items: Iterable[WorkItem],
    sender: Sender,
    stop: threading.Event,
    *,
    concurrency: int = 8,
    burst: bool = False,
    duration_s: float | None = None,
) -> str:
    """Play ``items`` through ``sender``; return when done, after ``duration_s``, or on stop.

    Returns how the run ended: ``completed``, ``duration``, ``stopped`` (``stop`` set by the
    caller) or ``interrupted`` (Ctrl-C). ``stop`` must be the event the sender (and its pacer)
    watch. Exceptions from workers are re-raised here after every worker has ended.
    """
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise ValueError(f"concurrency must be 1..{MAX_CONCURRENCY}")
    feed = _Feed(items, stop)
    gate = threading.Barrier(concurrency) if burst else None
    errors: list[BaseException] = []

    def work() -> None:
        try:
            item = feed.next()
            if gate is not None:
                # A broken gate (a worker failed, or waited too long) just means: go now.
                with contextlib.suppress(threading.BrokenBarrierError):
                    gate.wait(_GATE_TIMEOUT_S)
            while item is not None:
                if isinstance(item, CardScript):
                    sender.play(item)
                elif isinstance(item, BadRequest):
                    sender.send_bad(item)
                item = feed.next()
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)
            stop.set()
            if gate is not None:
                gate.abort()

    workers = [
        threading.Thread(target=work, name=f"finci-sim-{n}", daemon=True)
        for n in range(concurrency)
    ]
    deadline = None if duration_s is None else time.monotonic() + duration_s
    ended = "completed"
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            while worker.is_alive():
                worker.join(0.1)
                if deadline is not None and time.monotonic() >= deadline and not stop.is_set():
                    ended = "duration"
                    stop.set()
    except KeyboardInterrupt:
        # Ctrl-C (or SIGTERM, turned into one by the CLI) is how an endless run normally ends:
        # let the workers wind down and report what happened.
        ended = "interrupted"
        stop.set()
        if gate is not None:
            gate.abort()  # workers not yet started would leave the others waiting
        for worker in workers:
            if worker.ident is not None:
                worker.join()
    if errors:
        raise errors[0]
    if ended == "completed" and stop.is_set():
        ended = "stopped"
    return ended


def run_scenario(
    scenario: str,
    console_url: str,
    secret: WebhookSecret | str,
    *,
    seed: int = 1,
    run_id: str = "sim",
    book: CardBook | None = None,
    cards: int | None = None,
    delivery: DeliveryPolicy | None = None,
    malformed_rate: float | None = None,
    concurrency: int | None = None,
    burst: bool | None = None,
    rate: float | None = None,
    duration_s: float | None = None,
    deadline_s: float = contract.AUTHORIZATION_ANSWER_DEADLINE_SECONDS,
    retry: RetryPolicy | None = None,
    timeout_s: float = 10.0,
    verify: bool | str = True,
    stop: threading.Event | None = None,
) -> Report:
    """Run one named scenario against ``{console_url}/webhooks/finci`` and return its report.

    Every ``None`` takes the scenario's default. ``book`` is FINCI's card book for the run
    (seeded from ``seed`` when not given); status changes the scenario announces are recorded
    in it, so a Card API server sharing the book shows them. ``steady`` runs until
    ``duration_s`` passes or ``stop`` is set.
    """
    spec = get_scenario(scenario)
    count = cards if cards is not None else spec.cards
    book = book if book is not None else run_book(seed, count)
    items = work_items(spec, book, seed=seed, run_id=run_id, cards=count, delivery=delivery,
                       malformed_rate=malformed_rate)
    stop = stop or threading.Event()
    report = Report(scenario=spec.name, seed=seed, run_id=run_id, deadline_s=deadline_s)
    workers = concurrency if concurrency is not None else spec.concurrency
    burst_mode = burst if burst is not None else spec.burst
    if burst_mode:
        if spec.endless:
            raise ValueError(f"{spec.name} has no end, so it cannot start all at once (burst)")
        # Everything at once: one worker per work item, all released together.
        items = list(items)
        cap = concurrency if concurrency is not None else MAX_CONCURRENCY
        workers = max(1, min(len(items), cap))
    with Sender(
        console_url, secret, report,
        deadline_s=deadline_s, retry=retry, timeout_s=timeout_s, verify=verify, stop=stop,
        pacer=Pacer(rate, stop) if rate else None,
        on_card_status=lambda token_id, status, stage: book.record(token_id, status, stage),
    ) as sender:
        ended = "failed"
        try:
            ended = run_items(items, sender, stop, concurrency=workers, burst=burst_mode,
                              duration_s=duration_s)
        finally:
            report.finish(ended)
    return report
