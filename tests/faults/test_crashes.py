"""The guarantees under crashes, with real processes and a PostgreSQL cluster the test kills:

- PostgreSQL crashes (``pg_ctl stop -m immediate``) in the middle of ingest: while it is down
  deliveries get 503 (never a 500, never a 200 for something not stored); FINCI retries; after
  the restart every acknowledged message is stored once and processed exactly once.
- A worker is killed with -9 again and again at random moments (inside claims, handlers and
  commits): every stored message is processed exactly once in the end.
- PostgreSQL crashes under a running worker: the worker survives or is restarted, and every
  message is processed exactly once after recovery.

A ground-truth ledger on the sender's side (what got a 200) is compared with the database.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest
import requests

from tests.faults.conftest import scale
from tests.ingress.helpers import signed
from tests.support.processes import Counts, body, post, process_env, run_worker, store_messages
from tests.support.servers import ROOT, Gunicorn

pytestmark = [pytest.mark.slow, pytest.mark.faults]


class Sender:
    """FINCI's side: delivers every message until it gets a 200, retrying after a refusal."""

    def __init__(self, url: str, deliveries: list[tuple[bytes, dict]], retry_s: float = 0.1):
        self.url, self.deliveries, self.retry_s = url, deliveries, retry_s
        self.acknowledged: list[str] = []
        self.statuses: Counter[int] = Counter()
        self.errors = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with requests.Session() as http:
            for raw, headers in self.deliveries:
                while True:
                    try:
                        response, _ = post(self.url, raw, headers, http)
                    except requests.RequestException:
                        self.errors += 1
                        time.sleep(self.retry_s)
                        continue
                    self.statuses[response.status_code] += 1
                    if response.status_code == 200:
                        self.acknowledged.append(headers["webhook-id"])
                        break
                    time.sleep(self.retry_s)


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_postgres_crash_during_ingest_loses_nothing_acknowledged(cluster, cluster_url,
                                                                 pan_scanner):
    total = scale(300, 10_000)
    deliveries = [signed(body()) for _ in range(total)]
    env = process_env(cluster_url, DB_POOL_SIZE="4", DB_CONNECT_TIMEOUT_S="1")
    with Gunicorn(env, workers=2, threads=4) as server:
        sender = Sender(server.url, deliveries)
        sender.thread.start()
        _wait(lambda: len(sender.acknowledged) >= total // 3, 300, "ingest made no progress")
        cluster.crash()
        down_from = len(sender.acknowledged)
        time.sleep(2)
        during = dict(sender.statuses)
        cluster.start()
        cluster.wait_ready()
        sender.thread.join(timeout=600)
        assert not sender.thread.is_alive(), "deliveries did not all succeed after the restart"
    pan_scanner.scan(server.output(), "gunicorn")
    assert len(sender.acknowledged) == total and len(set(sender.acknowledged)) == total
    assert set(sender.statuses) <= {200, 503}, sender.statuses  # never a 500 or a 4xx
    assert during.get(503, 0) > 0, "the outage was not seen"
    print(f"\ningest across a PostgreSQL crash: {total} acknowledged, "
          f"{sender.statuses[503]} answers 503 while down (crash after {down_from}), "
          f"{sender.errors} connection errors")

    run_worker(process_env(cluster_url), "--once")
    counts = Counts(cluster_url)
    try:
        after = counts()
    finally:
        counts.close()
    assert after["messages"] == total, after
    assert (after["processed"], after["effects"], after["applied_twice"]) == (total, total, 0)


def _worker(env) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "worker", "--json"], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def test_workers_killed_at_random_moments_process_everything_exactly_once(cluster_url):
    total, kills = scale(400, 10_000), scale(6, 30)
    store_messages(cluster_url, total)
    env = process_env(cluster_url, PROCESS_TEST_HANDLER_DELAY_S="0.002")
    rng = random.Random(int(os.environ.get("FAULT_SEED", "16")))
    counts = Counts(cluster_url)
    try:
        for _ in range(kills):
            before = counts()["processed"]
            victim = _worker(env)
            # The kill must land in work, however slow startup is on a loaded machine: wait
            # for this worker's first commits, then a random moment inside what follows.
            deadline = time.monotonic() + 60
            while counts()["processed"] == before and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 0.5))
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait(timeout=10)
            if counts()["processed"] == total:
                break
        killed_at = counts()
        time.sleep(2.2)  # the dead workers' leases (2 s) run out
        survivor = _worker(env)
        try:
            _wait(lambda: counts()["processed"] == total, 600, "the survivor did not finish")
        finally:
            survivor.terminate()
            survivor.wait(timeout=30)
        after = counts()
    finally:
        counts.close()
    print(f"\n{kills} workers killed with -9; {killed_at['processed']} of {total} processed "
          f"before the survivor, {after['lease_expired']} leases expired")
    assert killed_at["processed"] > 0, "no kill landed while a worker was working"
    assert (after["processed"], after["effects"], after["applied"]) == (total, total, total)
    assert after["applied_twice"] == 0


def test_postgres_crash_under_a_running_worker_processes_everything_once(cluster, cluster_url):
    total = scale(300, 5_000)
    store_messages(cluster_url, total)
    env = process_env(cluster_url, PROCESS_TEST_HANDLER_DELAY_S="0.005",
                      DB_CONNECT_TIMEOUT_S="1")
    counts = Counts(cluster_url)
    worker = _worker(env)
    try:
        _wait(lambda: counts()["processed"] >= total // 4, 300, "the worker made no progress")
        counts.close()
        cluster.crash()
        time.sleep(2)
        cluster.start()
        cluster.wait_ready()
        counts = Counts(cluster_url)
        if worker.poll() is not None:  # it gave up while the database was gone: restart it
            worker = _worker(env)
        _wait(lambda: counts()["processed"] == total, 600, "processing did not resume")
        after = counts()
    finally:
        if worker.poll() is None:
            worker.terminate()
            worker.wait(timeout=30)
        counts.close()
    assert (after["processed"], after["effects"], after["applied_twice"]) == (total, total, 0)


def test_two_of_everything_against_one_database_keep_the_guarantees(cluster_url, tmp_path):
    """Two web instances, two workers and two schedulers: every message delivered to both web
    instances at once is stored once and processed exactly once."""
    from concurrent.futures import ThreadPoolExecutor

    total = scale(200, 10_000)
    env = process_env(cluster_url, DB_POOL_SIZE="4", PROCESS_TEST_HANDLER_DELAY_S="0.002")
    deliveries = [signed(body()) for _ in range(total)]
    counts = Counts(cluster_url)
    processes = []
    try:
        with Gunicorn(env, workers=1, threads=4) as first, \
                Gunicorn(env, workers=1, threads=4) as second:
            for _ in range(2):
                processes.append(_worker(env))
                processes.append(subprocess.Popen(
                    [sys.executable, "-m", "flask", "--app", "wsgi", "scheduler"], cwd=ROOT,
                    env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    start_new_session=True))

            def deliver_to_both(delivery):
                raw, headers = delivery
                with ThreadPoolExecutor(2) as both:
                    answers = list(both.map(lambda url: post(url, raw, headers)[0].status_code,
                                            (first.url, second.url)))
                return answers

            with ThreadPoolExecutor(4) as pool:
                answers = list(pool.map(deliver_to_both, deliveries))
            _wait(lambda: counts()["processed"] == total, 600, "processing did not finish")
            after = counts()
        assert all(p.poll() is None for p in processes), "a worker or scheduler died"
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            process.wait(timeout=30)
        counts.close()
    assert all(a == [200, 200] for a in answers), Counter(map(tuple, answers))
    assert after["messages"] == total
    assert (after["processed"], after["effects"], after["applied_twice"]) == (total, total, 0)
