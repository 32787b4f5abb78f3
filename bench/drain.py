"""Worker drain rate on PostgreSQL: a stored backlog processed by real worker processes.

`python -m bench drain`. One scratch database, funded cards, and for each measurement a fresh
backlog of lifecycle stories (request, advice, partial presentment, reversal of the rest per
transaction; built and stored with the lifecycle bench's helpers, through the real ingress):

- real handlers, 1 and 2 worker processes: ``flask worker --once --json`` started as the
  console runs it (the process tests' way, tests/support/processes.py), each draining until
  idle. The rate is the backlog's messages over the span of the workers' own processing
  attempts (first attempt started to last finished), so process start-up is not counted;
- reference: the same backlog drained in-process by one worker with every handler replaced by
  a no-op (claim, fencing, effect ledger and commit only), in the same run.

Target: >= 1,000 msgs/s with two workers. On a 2-vCPU machine shared with PostgreSQL the two
workers and the database compete for the same two cores: the printed load average says how
much else was running.

Environment: BENCH_DRAIN_TRANSACTIONS (250, i.e. 1,000 messages per backlog), BENCH_CARDS (100),
BENCH_DRAIN_BATCH (50 messages claimed per batch).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from sqlalchemy import func, select

from bench.common import Figure, ScratchDatabase

ROOT = Path(__file__).resolve().parent.parent


def _store(database, session, bodies: list[dict]) -> int:
    """Store the backlog through the real ingress; the last processing attempt id before it."""
    from console.pipeline.models import ProcessingAttempt
    from tests.transactions.support import Driver

    driver = Driver(database, session)
    for body in bodies:
        driver.deliver(body)
    since = session.scalar(select(func.coalesce(func.max(ProcessingAttempt.id), 0)))
    session.commit()
    return since


def _span(session, since: int) -> tuple[float, int]:
    """Seconds from the first attempt's start to the last one's end after ``since``, and how
    many attempts."""
    from console.pipeline.models import ProcessingAttempt

    first, last, count = session.execute(
        select(func.min(ProcessingAttempt.started_at), func.max(ProcessingAttempt.finished_at),
               func.count()).where(ProcessingAttempt.id > since)).one()
    session.commit()
    return ((last - first).total_seconds() if count else float("nan")), count


def _pending(session) -> int:
    from console.ingress.models import MessageStatus, StoredMessage

    pending = session.scalar(select(func.count()).select_from(StoredMessage)
                             .where(StoredMessage.status == MessageStatus.PENDING))
    session.commit()
    return pending or 0


def _drain_processes(env: dict[str, str], workers: int) -> list[dict]:
    processes = [subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "worker", "--once", "--json"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(workers)]
    reports = []
    for process in processes:
        out, err = process.communicate(timeout=600)
        if process.returncode != 0:
            raise RuntimeError(f"worker exited {process.returncode}: {err[-3000:]}")
        reports.append(json.loads(out))
    return reports


def run(pg_url: str) -> list[Figure]:
    sys.path.insert(0, str(ROOT))
    from bench.lifecycle import _process, _stories, noop_handlers, use_handlers
    from console.audit import Actor
    from console.cards.services import issue_funded_card
    from console.db import Database, make_engine
    from console.deployment import record_environment
    from console.pipeline import handlers
    from tests.support.servers import console_env

    transactions = int(os.environ.get("BENCH_DRAIN_TRANSACTIONS", 250))
    cards = int(os.environ.get("BENCH_CARDS", 100))
    batch = os.environ.get("BENCH_DRAIN_BATCH", "50")
    load_before = os.getloadavg()[0]
    rates: dict[str, float] = {}
    notes: list[str] = []
    with ScratchDatabase(pg_url) as url:
        database = Database(make_engine(url, pool_size=4))
        session = database.session()
        record_environment(session, "sandbox", Actor.system("bench"))
        tokens = [f"tok_bench_{uuid.uuid4().hex[:12]}" for _ in range(cards)]
        for token in tokens:
            issue_funded_card(session, token_id=token, balance=10**9)
        session.commit()
        env = console_env(url, LOG_LEVEL="WARNING", PIPELINE_POLL_INTERVAL_S="0.05",
                          PIPELINE_BATCH_SIZE=batch)

        handlers.load()
        real = [handlers.handler_for(t) for t in handlers.registered_types()]
        use_handlers(noop_handlers())
        try:
            bodies = _stories(tokens, transactions, "ref")
            seconds, _ = _process(database, session, bodies)
            rates["reference"] = len(bodies) / seconds
        finally:
            use_handlers(real)

        for workers in (1, 2):
            bodies = _stories(tokens, transactions, f"w{workers}")
            since = _store(database, session, bodies)
            reports = _drain_processes(env, workers)
            span, attempts = _span(session, since)
            left = _pending(session)
            rates[f"{workers}"] = len(bodies) / span
            applied = sum(r.get("applied", 0) for r in reports)
            failed = sum(r.get("failed", 0) + r.get("dead", 0) for r in reports)
            notes.append(f"{workers} worker(s): {len(bodies)} messages, {attempts} attempts, "
                         f"{applied} applied, {failed} failed/dead, {left} left pending, "
                         f"{span:.2f} s")
        session.close()
        database.dispose()
    print(f"drain: {'; '.join(notes)}; no-op reference in-process 1 worker; batch {batch}; "
          f"load average {load_before:.2f} -> {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs",
          file=sys.stderr)
    two = rates["2"]
    if two < 1000:
        if rates["reference"] < 1000:
            reason = (f"the no-op floor itself is {rates['reference']:,.0f} msgs/s here (claim, "
                      f"fencing, effect ledger and commit per message, PostgreSQL on the same "
                      f"{os.cpu_count()} cores)")
        else:
            reason = (f"the real handlers cost {1000 / rates['1']:.1f} ms a message in one "
                      f"process and 2 processes scale {two / rates['1']:.2f}x on "
                      f"{os.cpu_count()} cores shared with PostgreSQL")
        print(f"drain target not met: 2 workers drain {two:,.0f} msgs/s < 1,000: {reason}",
              file=sys.stderr)
    return [
        Figure("worker drain, real handlers, 1 process", rates["1"], "msg/s",
               rates["reference"], "no-op handlers, 1 worker"),
        Figure("worker drain, real handlers, 2 processes", two, "msg/s",
               rates["reference"], "no-op handlers, 1 worker", target=">= 1,000 msg/s",
               met=two >= 1000),
        Figure("worker drain scaling 2 vs 1 process", two, "msg/s", rates["1"],
               "real handlers, 1 process"),
    ]


if __name__ == "__main__":
    from bench.common import DEFAULT_PG, table

    print(table(run(os.environ.get("BENCH_PG_URL", DEFAULT_PG))))
