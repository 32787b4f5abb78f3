"""Webhook ingest throughput and ack latency through gunicorn on PostgreSQL, beside references.

`python -m bench.ingest` (or `python -m bench ingest`). Same gunicorn config file, worker and
thread counts, one scratch database, plain HTTP on loopback:

- ingress: ``POST /webhooks/finci`` of the console app (source checks, rate limit, body cap,
  Standard Webhooks verification, parsing and schema validation, masking, the message and its
  first delivery INSERTed, COMMIT before the 200);
- floor (the reference): the least a verify-and-store endpoint can do, in a bare Flask app on
  its own gunicorn with the same settings (read the body, verify the HMAC, one INSERT … ON
  CONFLICT through a pool, COMMIT; see bench/reference_app.py). The target, ingress >= 0.8x
  the floor's throughput, is checked against it;
- in-console reference: ``POST /bench/reference``, the same minimal endpoint inside the console
  app and server, wrapped in every console hook: printed as a second figure, so what the shared
  hooks cost (floor vs in-console) and what the ingress design costs (in-console vs ingress)
  are both visible.

Load: closed loop, several client processes each with several threads, every request a new
signed presentment, from client processes started once. The endpoints are measured in many
short alternating rounds so drift in a shared machine's load hits all of them alike.
Bounded: about 45 s in all.

Environment: BENCH_INGEST_ROUND_S (1.5), BENCH_INGEST_ROUNDS (8), BENCH_INGEST_CLIENTS (2
processes), BENCH_INGEST_THREADS (8 per process), BENCH_WORKERS (2 gunicorn workers, 8 threads).

Profile of the ingress hot path (`python -m bench.profile_ingress`, cProfile in-process over
600 presentments on PostgreSQL, 2026-12-07 on the shared 2-vCPU machine at load average ~6):
16.0 ms a request for ``/webhooks/finci`` against 12.3 ms for the in-console reference. Of the
view's time (12.9 s of 17.4 s profiled), ``ingress.services.store`` is 10.1 s and nearly all of
it is waiting on PostgreSQL (psycopg ``wait`` 8.1 s): three round trips a request, each about a
third: the pool's pre-ping on checkout (``SELECT 1``, 2.8 s), the single INSERT of message and
first delivery (2.8 s) and the COMMIT (3.0 s). The Python work is small: ``parse_message`` 0.7 s
(schema validation 0.3 s of it), the ``before_request`` hooks 0.7 s, HMAC verification 0.4 s,
masking 0.2 s, the stored header selection 0.2 s. So the ingress is one INSERT and one COMMIT
away from the floor, which pays the same pre-ping and COMMIT; what separates them is the
console's per-request hooks (the in-console reference against the bare app) more than the
ingress's own work (ingress against the in-console reference). No cheap safe win was taken:
dropping the pre-ping (``pool_pre_ping`` in console/db.py) would save a third of the round
trips, but it is what replaces a pooled connection that died while idle (a database restart or
failover) before a delivery uses it, instead of answering that delivery 503; and the floor pays
it too, so the ratio would not move.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from bench.common import DEFAULT_PG, Figure, ScratchDatabase, percentile, table, write_results

ROOT = Path(__file__).resolve().parent.parent
SECRET_TEXT = "whsec_" + "YmVuY2gtaW5nZXN0LXNlY3JldC0wMTIzNDU2Nzg5YWI="  # bench only


def _env(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


class Server:
    """gunicorn with the production config file, serving ``app_path`` on a free port."""

    def __init__(self, app_path: str, env: dict[str, str], workers: int, threads: int):
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = dict(env, CONSOLE_BIND=f"127.0.0.1:{self.port}",
                        WEB_CONCURRENCY=str(workers), WEB_THREADS=str(threads))
        self.app_path = app_path
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()

    def start(self) -> Server:
        import requests

        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"),
             self.app_path], cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + 60  # a loaded shared machine starts gunicorn slowly
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"{self.app_path} exited:\n{self.log.read().decode()[-3000:]}")
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.app_path} did not start")

    def stop(self) -> None:
        if getattr(self, "process", None) is None:  # never started: another server failed first
            self.log.close()
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        self.log.close()


def _run_task(url: str, seconds: float, threads: int, seed: str, counter, secret
              ) -> tuple[list[float], int]:
    import http.client
    from urllib.parse import urlsplit

    from console.finci.webhook_signature import signed_headers

    parts = urlsplit(url)
    latencies: list[list[float]] = [[] for _ in range(threads)]
    failures = [0] * threads
    stop_at = time.perf_counter() + seconds

    def connect() -> http.client.HTTPConnection:
        return http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)

    def loop(slot: int) -> None:
        connection = connect()
        while time.perf_counter() < stop_at:
            n = next(counter)
            document = {"type": "presentment", "id": f"pres_{seed}_{n}",
                        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        "token_id": f"tok_{slot:04d}", "amount": 1250, "currency": "EUR",
                        "authorization_id": f"auth_{seed}_{n}",
                        "merchant": {"name": "BENCH SHOP", "mcc": "5411", "country": "DE"}}
            raw = json.dumps(document).encode()
            headers = signed_headers(secret, f"msg_{seed}_{n}", int(time.time()), raw)
            headers["Content-Type"] = "application/json"
            started = time.perf_counter()
            try:
                connection.request("POST", parts.path, body=raw, headers=headers)
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                connection.close()
                connection = connect()
                ok = False
            if ok:
                latencies[slot].append(time.perf_counter() - started)
            else:
                failures[slot] += 1
        connection.close()

    workers = [threading.Thread(target=loop, args=(slot,)) for slot in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return [x for per in latencies for x in per], sum(failures)


def _client(tasks: mp.Queue, results: mp.Queue, threads: int, seed: str) -> None:
    """One client process, kept for the whole run: for each task ``(url, seconds)`` it runs
    ``threads`` closed loops posting new signed messages over keep-alive connections (plain
    http.client: a light client leaves more of the machine to the servers)."""
    from console.finci.webhook_signature import WebhookSecret

    secret = WebhookSecret.parse(SECRET_TEXT)
    counter = iter(range(10**12))
    while (task := tasks.get()) is not None:
        url, seconds = task
        results.put(_run_task(url, seconds, threads, seed, counter, secret))


class Clients:
    def __init__(self, processes: int, threads: int):
        self.tasks: mp.Queue = mp.Queue()
        self.results: mp.Queue = mp.Queue()
        self.processes = [mp.Process(target=_client, args=(self.tasks, self.results, threads,
                                                           uuid.uuid4().hex[:8]))
                          for _ in range(processes)]
        for process in self.processes:
            process.start()

    def measure(self, url: str, seconds: float) -> tuple[list[float], int]:
        for _ in self.processes:
            self.tasks.put((url, seconds))
        latencies: list[float] = []
        failures = 0
        for _ in self.processes:
            got, failed = self.results.get()
            latencies.extend(got)
            failures += failed
        return latencies, failures

    def close(self) -> None:
        for _ in self.processes:
            self.tasks.put(None)
        for process in self.processes:
            process.join()


def _prepare(url: str) -> None:
    from sqlalchemy import text

    from bench.reference_app import CREATE
    from console.audit import Actor
    from console.db import Database, make_engine
    from console.deployment import record_environment

    database = Database(make_engine(url))
    with database.transaction() as session:
        record_environment(session, "sandbox", Actor.system("bench"))
        session.execute(text(CREATE))
    database.dispose()


def run(pg_url: str) -> list[Figure]:
    sys.path.insert(0, str(ROOT))
    from tests.support.servers import console_env

    seconds = _env("BENCH_INGEST_ROUND_S", 1.5)
    rounds = int(_env("BENCH_INGEST_ROUNDS", 8))
    clients = int(_env("BENCH_INGEST_CLIENTS", 2))
    threads = int(_env("BENCH_INGEST_THREADS", 8))
    workers = int(_env("BENCH_WORKERS", 2))
    load_before = os.getloadavg()[0]
    samples: dict[str, list[float]] = {"ingress": [], "reference": [], "floor": []}
    failures = {"ingress": 0, "reference": 0, "floor": 0}
    with ScratchDatabase(pg_url) as url:
        _prepare(url)
        env = console_env(url, FINCI_WEBHOOK_SECRETS=SECRET_TEXT, LOG_LEVEL="WARNING",
                          INGRESS_RATE_LIMIT_PER_S="1000000", INGRESS_RATE_LIMIT_BURST="1000000",
                          DB_POOL_SIZE="10", CONSOLE_HSTS="false")
        servers = {"console": Server("bench.reference_app:create_console_app()", env, workers, 8),
                   "floor": Server("bench.reference_app:create_app()", env, workers, 8)}
        try:
            for server in servers.values():
                server.start()
            targets = {"reference": servers["console"].url + "/bench/reference",
                       "ingress": servers["console"].url + "/webhooks/finci",
                       "floor": servers["floor"].url + "/webhooks/finci"}
            load = Clients(clients, threads)
            try:
                for url_ in targets.values():  # warm pools, imports and caches
                    load.measure(url_, 1.0)
                for _ in range(rounds):
                    for name, url_ in targets.items():
                        got, failed = load.measure(url_, seconds)
                        samples[name].extend(got)
                        failures[name] += failed
            finally:
                load.close()
        finally:
            for server in servers.values():
                server.stop()

    duration = seconds * rounds
    throughput = {name: len(values) / duration for name, values in samples.items()}
    ms = {name: [v * 1000 for v in values] for name, values in samples.items()}
    print(f"ingest: acks ingress {len(samples['ingress'])}, reference "
          f"{len(samples['reference'])}, floor {len(samples['floor'])} in {rounds} alternating "
          f"rounds of {seconds:.1f} s; failures {failures}; {clients} client processes x "
          f"{threads} threads; gunicorn {workers} workers x 8 threads; load average "
          f"{load_before:.2f} -> {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs",
          file=sys.stderr)
    floor_ratio = throughput["ingress"] / throughput["floor"] if throughput["floor"] else 0
    return [
        Figure("ingest throughput (gunicorn, PG)", throughput["ingress"], "req/s",
               throughput["floor"], "bare Flask: HMAC + 1 INSERT",
               target=">= 0.8x bare endpoint", met=floor_ratio >= 0.8),
        Figure("ingest ack latency p50", percentile(ms["ingress"], 50), "ms",
               percentile(ms["floor"], 50), "bare Flask p50", higher_is_better=False),
        Figure("ingest ack latency p99", percentile(ms["ingress"], 99), "ms",
               percentile(ms["floor"], 99), "bare Flask p99", higher_is_better=False),
        Figure("ingest throughput vs in-console reference", throughput["ingress"], "req/s",
               throughput["reference"], "HMAC + 1 INSERT, console hooks"),
        Figure("in-console reference throughput", throughput["reference"], "req/s",
               throughput["floor"], "bare Flask: cost of console hooks"),
        Figure("in-console reference p50", percentile(ms["reference"], 50), "ms",
               percentile(ms["floor"], 50), "bare Flask p50", higher_is_better=False),
        Figure("in-console reference p99", percentile(ms["reference"], 99), "ms",
               percentile(ms["floor"], 99), "bare Flask p99", higher_is_better=False),
        Figure("ingest failed requests", float(failures["ingress"]), "requests",
               higher_is_better=False, target="0", met=failures["ingress"] == 0),
    ]


if __name__ == "__main__":
    figures = run(os.environ.get("BENCH_PG_URL", DEFAULT_PG))
    print(table(figures))
    print(f"results in {write_results('ingest', figures)}", file=sys.stderr)
