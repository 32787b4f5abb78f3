"""Authorization decision latency through gunicorn on PostgreSQL, with webhook ingest beside it.

What runs (one scratch database, one gunicorn with the production config file, plain HTTP on
loopback so the figure is the application's, not TLS's):

- decisions: signed authorization requests (advice=false) in steps of increasing rate (20,
  100, 200/s by default), each step open loop (each request is sent at its scheduled time
  whether or not earlier ones have been answered), spread over funded cards with limits,
  velocity and MCC rules in force, so every stage of decide() runs;
- ingest: signed presentment webhooks at their own steady rate, through the same ingress;
- reference: ``GET /healthz`` at a steady rate on the same server in the same run: the floor of
  gunicorn, Flask and HTTP on this machine under the same load, with no work behind it.

Each stream runs in its own process (the client must not be the bottleneck). Printed figures,
per step: client-observed p50/p99/max of decisions beside the reference's of the same step,
answers over the budget, decide()'s own p99 from the decision records; then the knee: the first
rate whose p99 passes 50 ms or where any answer passes the budget (target: none up to the last
step, i.e. p99 < 50 ms at 200/s with 0 over budget) and safe defaults used over all steps.

Environment: BENCH_DECISIONING_RATES ("20,100,200" authorizations/s, the steps in order),
BENCH_DECISIONING_SECONDS (20 per step), BENCH_INGEST_RATE (20/s, in every step),
BENCH_REFERENCE_RATE (10/s), BENCH_CARDS (500), BENCH_WORKERS (2), BENCH_THREADS (8).
On this class of machine (2 vCPU shared with the database and the load generator) one
decision costs about 7.5 ms of gunicorn CPU and 1.8 ms of client CPU, so 200/s asks for more
CPU than two cores have: the knee is expected below it. The load average is printed.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import random
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from sqlalchemy import func, select

from bench.common import Figure, ScratchDatabase, percentile

ROOT = Path(__file__).resolve().parent.parent
SECRET_TEXT = "whsec_" + "YmVuY2gtZGVjaXNpb25pbmctc2VjcmV0LTAxMjM0NTY3"  # bench only
BUDGET_S = 1.5


def _env(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def _seed(url: str, cards: int) -> list[str]:
    from console.audit import Actor
    from console.cards.services import issue_funded_card
    from console.db import Database, make_engine
    from console.decisioning.config import save_config
    from console.deployment import record_environment

    database = Database(make_engine(url))
    tokens = [f"tok_bench_{i:05d}" for i in range(cards)]
    with database.transaction() as session:
        record_environment(session, "sandbox", Actor.system("bench"))
        for token in tokens:
            issue_funded_card(session, token_id=token, currency="EUR", balance=50_000_000)
        save_config(session, Actor.system("bench"), {
            "limits": [
                {"scope": "card", "period": "transaction", "currency": "EUR",
                 "max_amount": 500_000},
                {"scope": "card", "period": "day", "currency": "EUR", "max_amount": 40_000_000},
                {"scope": "account", "period": "month", "currency": "EUR",
                 "max_amount": 45_000_000},
            ],
            "blocked_mccs": ["7995"], "blocked_countries": ["KP"],
            "velocity_max": 1000, "velocity_window_s": 60,
        }, reason="benchmark rules")
    database.dispose()
    return tokens


def _stream(kind: str, url: str, rate: float, seconds: float, tokens: list[str],
            out: mp.Queue) -> None:
    """One open-loop stream; puts a list of (latency_s, status, answer) on ``out``."""
    from console.finci.webhook_signature import WebhookSecret, signed_headers

    secret = WebhookSecret.parse(SECRET_TEXT)
    rand = random.Random(kind)
    session_pool: dict[int, requests.Session] = {}

    def http() -> requests.Session:
        key = threading.get_ident()
        if key not in session_pool:
            session_pool[key] = requests.Session()
        return session_pool[key]

    def body(index: int) -> bytes:
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        token = rand.choice(tokens)
        if kind == "decisions":
            document = {"type": "authorization", "id": f"auth_{uuid.uuid4().hex}",
                        "created_at": now, "token_id": token, "advice": False,
                        "amount": rand.randint(100, 20_000), "currency": "EUR",
                        "merchant": {"name": "BENCH SHOP", "mcc": "5411", "country": "DE"}}
        else:
            document = {"type": "presentment", "id": f"pres_{uuid.uuid4().hex}",
                        "created_at": now, "token_id": token, "amount": 1_000,
                        "currency": "EUR", "authorization_id": f"auth_{index}",
                        "merchant": {"name": "BENCH SHOP", "mcc": "5411", "country": "DE"}}
        return json.dumps(document).encode()

    def send(index: int, scheduled: float) -> tuple[float, int, str, float]:
        if kind == "reference":
            started = time.perf_counter()
            response = http().get(f"{url}/healthz", timeout=10)
            return time.perf_counter() - started, response.status_code, "", 0.0
        raw = body(index)
        headers = signed_headers(secret, f"msg_{uuid.uuid4().hex}", int(time.time()), raw)
        headers["Content-Type"] = "application/json"
        started = time.perf_counter()
        response = http().post(f"{url}/webhooks/finci", data=raw, headers=headers, timeout=10)
        latency = time.perf_counter() - started
        answer = response.json().get("status", "") if response.status_code == 200 else ""
        return latency, response.status_code, answer, started - scheduled

    total = int(rate * seconds)
    results = []
    with ThreadPoolExecutor(max_workers=max(16, int(rate // 4))) as pool:
        start = time.perf_counter() + 0.5
        futures = []
        for index in range(total):
            scheduled = start + index / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(send, index, scheduled))
        for future in futures:
            try:
                results.append(future.result())
            except Exception as exc:
                results.append((float("nan"), 0, type(exc).__name__, 0.0))
    out.put((kind, results))


def _last_record_id(url: str) -> int:
    from console.db import make_engine
    from console.decisioning.models import DecisionRecord

    engine = make_engine(url)
    with engine.connect() as connection:
        last = connection.scalar(select(func.max(DecisionRecord.id)))
    engine.dispose()
    return last or 0


def _decision_records(url: str, after_id: int) -> tuple[list[float], list[float], int]:
    """Per measured decision (the warm-up's are left out): the recorded total, from the
    request's arrival at the ingress, and decide()'s own part (the total without stage
    ``ingress``)."""
    from console.db import make_engine
    from console.decisioning.models import DecisionRecord

    engine = make_engine(url)
    measured = DecisionRecord.id > after_id
    with engine.connect() as connection:
        rows = connection.execute(select(DecisionRecord.total_ms, DecisionRecord.latency_ms)
                                  .where(measured)).all()
        totals = [total for total, _ in rows]
        own = [total - (stages or {}).get("ingress", 0.0) for total, stages in rows]
        defaults = connection.scalar(select(func.count()).select_from(DecisionRecord)
                                     .where(measured, DecisionRecord.default_used.is_(True)))
    engine.dispose()
    return totals, own, defaults or 0


def _step(server_url: str, rates: dict[str, float], seconds: float, tokens: list[str]
          ) -> dict[str, list]:
    """One step: every stream at its rate for ``seconds``, each in its own process."""
    queue: mp.Queue = mp.Queue()
    processes = [mp.Process(target=_stream, args=(kind, server_url, rate, seconds, tokens,
                                                  queue))
                 for kind, rate in rates.items()]
    for process in processes:
        process.start()
    results = dict(queue.get() for _ in processes)
    for process in processes:
        process.join()
    return results


def _step_figures(rate: float, results: dict[str, list], seconds: float, decide_ms: list[float],
                  ingest_rate: float, *, top: bool) -> tuple[list[Figure], bool, str]:
    """The figures of one step, whether it passed (p99 < 50 ms, none over the budget), and
    the line printed about it. The targets are carried by the ``top`` (last) step's figures.
    Latency is timed from the send; the client's own lag behind the schedule (its threads all
    busy waiting for answers) is a figure of its own, so queueing in the client is visible."""
    decisions = results["decisions"]
    latencies_ms = [r[0] * 1000 for r in decisions if r[1] == 200]
    failures = sum(1 for r in decisions if r[1] != 200)
    over_budget = sum(1 for r in decisions if not r[0] * 1000 < BUDGET_S * 1000)
    approvals = sum(1 for r in decisions if r[2] == "success")
    reference_ms = [r[0] * 1000 for r in results["reference"] if r[1] == 200]
    ingest_ok = sum(1 for r in results["ingest"] if r[1] == 200)
    client_lag_ms = max((r[3] * 1000 for r in decisions), default=0.0)
    p50, p99 = percentile(latencies_ms, 50), percentile(latencies_ms, 99)
    worst = max(latencies_ms, default=float("nan"))
    bad = over_budget + failures
    passed = p99 < 50 and bad == 0
    at = f"@{rate:g}/s"
    line = (f"decisions {at}: sent {len(decisions)} in {seconds:.0f} s, {approvals} approved, "
            f"{failures} not answered 200; ingest {ingest_ok}/{len(results['ingest'])} stored "
            f"at {ingest_rate:g}/s; client send lag max {client_lag_ms:.1f} ms")
    figures = [
        Figure(f"decision latency p50 {at} (with ingest)", p50, "ms",
               percentile(reference_ms, 50), "GET /healthz p50, same step",
               higher_is_better=False),
        Figure(f"decision latency p99 {at} (with ingest)", p99, "ms",
               percentile(reference_ms, 99), "GET /healthz p99, same step",
               higher_is_better=False, target="p99 < 50 ms" if top else None,
               met=p99 < 50 if top else None),
        Figure(f"decision latency max {at}", worst, "ms", max(reference_ms, default=None),
               "GET /healthz max, same step", higher_is_better=False),
        Figure(f"answers over the budget {at}", float(bad), "answers", higher_is_better=False,
               target="0" if top else None, met=bad == 0 if top else None),
        Figure(f"client send lag max {at}", client_lag_ms, "ms", higher_is_better=False),
        Figure(f"decide() alone p99 {at} (records)", percentile(decide_ms, 99), "ms",
               higher_is_better=False),
        Figure(f"ingest stored beside decisions {at}", ingest_ok / seconds, "req/s",
               ingest_rate, "offered rate"),
    ]
    return figures, passed, line


def run(pg_url: str) -> list[Figure]:
    sys.path.insert(0, str(ROOT))
    from tests.support.servers import Gunicorn, console_env

    seconds = _env("BENCH_DECISIONING_SECONDS", 20)
    steps = [float(r) for r in os.environ.get("BENCH_DECISIONING_RATES", "20,100,200").split(",")
             if r.strip()]
    side = {"ingest": _env("BENCH_INGEST_RATE", 20),
            "reference": _env("BENCH_REFERENCE_RATE", 10)}
    load_before = f"{os.getloadavg()[0]:.2f}"
    figures: list[Figure] = []
    knee: float | None = None
    all_defaults = 0
    workers = int(_env("BENCH_WORKERS", 2))
    threads = int(_env("BENCH_THREADS", 8))
    with ScratchDatabase(pg_url) as url:
        tokens = _seed(url, int(_env("BENCH_CARDS", 500)))
        env = console_env(url, FINCI_WEBHOOK_SECRETS=SECRET_TEXT,
                          INGRESS_RATE_LIMIT_PER_S="100000", INGRESS_RATE_LIMIT_BURST="100000",
                          DECISIONING_BUDGET_S=str(BUDGET_S), DB_POOL_SIZE="10",
                          LOG_LEVEL="WARNING", CONSOLE_HSTS="false")
        with Gunicorn(env, workers=workers, threads=threads) as server:
            # Warm every worker's connections, prepared statements and caches on both paths.
            warm: mp.Queue = mp.Queue()
            for kind in ("decisions", "ingest", "decisions"):
                _stream(kind, server.url, 50, 3, tokens, warm)
                warm.get()
            for rate in steps:
                before = _last_record_id(url)
                results = _step(server.url, {"decisions": rate, **side}, seconds, tokens)
                _, decide_ms, defaults = _decision_records(url, before)
                all_defaults += defaults
                got, passed, line = _step_figures(rate, results, seconds, decide_ms,
                                                  side["ingest"], top=rate == steps[-1])
                print(f"{line}; load average {os.getloadavg()[0]:.2f}", file=sys.stderr)
                figures += got
                if not passed and knee is None:
                    knee = rate
    print(f"decisioning steps {steps} x {seconds:.0f} s; gunicorn {workers} workers x {threads} "
          f"threads; load average before {load_before} on {os.cpu_count()} CPUs",
          file=sys.stderr)
    top = max(steps, default=0)
    figures += [
        Figure("decisioning knee (first rate with p99 >= 50 ms or any over budget)",
               knee if knee is not None else float("nan"),
               "auth/s" if knee is not None else f"auth/s (none up to {top:g}/s)",
               higher_is_better=True, target=f"none up to {top:g}/s", met=knee is None),
        Figure("safe defaults used (all steps)", float(all_defaults), "answers",
               higher_is_better=False, target="0", met=all_defaults == 0),
    ]
    return figures


if __name__ == "__main__":
    from bench.common import DEFAULT_PG, table

    print(table(run(os.environ.get("BENCH_PG_URL", DEFAULT_PG))))
