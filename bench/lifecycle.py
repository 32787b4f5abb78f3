"""Transaction lifecycle processing and timelines on PostgreSQL.

What runs (one scratch database; the real ingress stores the messages, decisioning answers the
requests, the real pipeline worker applies them with the real handlers):

- lifecycle: stories of four messages per transaction (request, advice, partial presentment,
  reversal of the rest) over funded cards, processed by one worker: messages per second, and
  the apply latency per message (the worker's own attempt records);
- reference: the same number of equivalent messages processed by the same worker with every
  handler replaced by a no-op: the floor of claim, fencing, effect ledger and commit;
- timeline: ``timeline.build`` (what the page and ``flask trace`` run) over those transactions,
  against a primary-key read of the same transaction row in the same run.

Messages are built and delivered with the lifecycle tests' own driver (``tests/transactions/
support.py``): the bench measures exactly the path the property test proves.

Environment: BENCH_LIFECYCLE_TRANSACTIONS (300), BENCH_CARDS (100).
"""

from __future__ import annotations

import os
import time
import uuid

from sqlalchemy import select

from bench.common import Figure, ScratchDatabase, percentile


def _stories(tokens: list[str], count: int, tag: str) -> list[dict]:
    from tests.transactions.support import Bodies

    bodies: list[dict] = []
    for n in range(count):
        story = Bodies(tokens[n % len(tokens)])
        auth = f"auth_{tag}_{uuid.uuid4().hex[:10]}"
        bodies += [story.request(auth, 10_000), story.advice(auth, 10_000),
                   story.presentment(auth, 6_500), story.reversal(auth, 3_500)]
    return bodies


def _apply_times(session, since_id: int) -> list[float]:
    from console.pipeline.models import ProcessingAttempt

    return [(finished - started).total_seconds() * 1000 for started, finished in session.execute(
        select(ProcessingAttempt.started_at, ProcessingAttempt.finished_at)
        .where(ProcessingAttempt.id > since_id))]


def _process(database, session, bodies: list[dict]) -> tuple[float, list[float]]:
    """Store the bodies, then time one worker processing them: ``(seconds, apply_ms)``."""
    from sqlalchemy import func

    from console.pipeline.models import ProcessingAttempt
    from console.pipeline.worker import Worker
    from tests.transactions.support import PIPELINE, Driver

    driver = Driver(database, session)
    for body in bodies:
        driver.deliver(body)
    since = session.scalar(select(func.coalesce(func.max(ProcessingAttempt.id), 0)))
    session.commit()
    worker = Worker(database, PIPELINE, name="bench-lifecycle")
    started = time.perf_counter()
    report = worker.run(until_idle=True)
    elapsed = time.perf_counter() - started
    assert report.failed == 0 and report.dead == 0, report
    return elapsed, _apply_times(session, since)


def use_handlers(registrations) -> None:
    """Replace every registered handler by ``registrations`` (the no-op reference and back)."""
    from console.pipeline import handlers

    for message_type in list(handlers.registered_types()):
        handlers.remove(message_type)
    for registration in registrations:
        handlers.add(registration.message_type, registration.handler, name=registration.name)


def noop_handlers() -> list:
    from console.pipeline import handlers

    return [handlers.Registration(t, "bench.noop", lambda _ctx: None)
            for t in ("authorization", "presentment", "reversal")]


def run(pg_url: str) -> list[Figure]:
    from console.cards.services import issue_funded_card
    from console.db import Database, make_engine
    from console.pipeline import handlers
    from console.transactions import timeline
    from console.transactions.models import CardTransaction

    transactions = int(os.environ.get("BENCH_LIFECYCLE_TRANSACTIONS", 300))
    cards = int(os.environ.get("BENCH_CARDS", 100))
    with ScratchDatabase(pg_url) as url:
        database = Database(make_engine(url, pool_size=4))
        session = database.session()
        tokens = [f"tok_bench_{uuid.uuid4().hex[:12]}" for _ in range(cards)]
        for token in tokens:
            issue_funded_card(session, token_id=token, balance=10**9)
        session.commit()
        handlers.load()
        real = [handlers.handler_for(t) for t in handlers.registered_types()]
        use = use_handlers
        noop = noop_handlers()
        # Rounds alternate between the reference and the real handlers, so a change in the
        # machine's load during the run weighs on both alike.
        lifecycle_s = reference_s = 0.0
        apply_ms: list[float] = []
        reference_apply: list[float] = []
        messages = 0
        rounds = 5
        try:
            for _round in range(rounds):
                for registrations, tag in ((noop, "ref"), (real, "lc")):
                    use(registrations)
                    bodies = _stories(tokens, transactions // rounds, tag)
                    seconds, applied = _process(database, session, bodies)
                    if tag == "ref":
                        reference_s += seconds
                        reference_apply += applied
                    else:
                        lifecycle_s += seconds
                        apply_ms += applied
                        messages += len(bodies)
        finally:
            use(real)
        rate, reference_rate = messages / lifecycle_s, messages / reference_s

        ids = session.scalars(select(CardTransaction.id)
                              .where(CardTransaction.link_key.like("auth:auth_lc_%"))).all()
        build_ms, read_ms, events = [], [], 0
        for transaction_id in ids:
            session.expire_all()
            started = time.perf_counter()
            session.get(CardTransaction, transaction_id, populate_existing=True)
            read_ms.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            built = timeline.build(session, transaction_id)
            build_ms.append((time.perf_counter() - started) * 1000)
            events += len(built.events)
        states = {t.state for t in session.scalars(select(CardTransaction)
                                                   .where(CardTransaction.id.in_(ids)))}
        session.close()
        database.dispose()
    assert states == {"posted"}, states
    return [
        Figure("lifecycle messages processed", rate, "msg/s", reference_rate,
               "no-op handlers", target=">= 0.3x no-op handlers",
               met=rate >= 0.3 * reference_rate),
        Figure("lifecycle apply p50", percentile(apply_ms, 50), "ms",
               percentile(reference_apply, 50), "no-op handlers", higher_is_better=False),
        Figure("lifecycle apply p99", percentile(apply_ms, 99), "ms",
               percentile(reference_apply, 99), "no-op handlers", higher_is_better=False,
               target="< 100 ms", met=percentile(apply_ms, 99) < 100),
        Figure("timeline build p50", percentile(build_ms, 50), "ms",
               percentile(read_ms, 50), "primary-key read", higher_is_better=False),
        Figure("timeline build p99", percentile(build_ms, 99), "ms",
               percentile(read_ms, 99), "primary-key read", higher_is_better=False,
               target="< 50 ms", met=percentile(build_ms, 99) < 50),
        Figure("timeline events per transaction", events / max(1, len(ids)), "events"),
    ]


if __name__ == "__main__":
    from bench.common import DEFAULT_PG, table

    print(table(run(os.environ.get("BENCH_PG_URL", DEFAULT_PG))))
