"""Crash points inside processing (issue 16): a real worker process dies at a chosen point of
its N-th message (tests/faults/crash_points.py), then a fresh worker finishes the work. At every
point: nothing is lost, no effect is applied twice, and what the crash left uncommitted is
exactly what must be redone.

The crash is checked, not assumed: the worker must exit with the crash code, and the counts at
the moment of the crash must be the ones that point leaves behind.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.faults.conftest import scale
from tests.faults.crash_points import CRASH_EXIT
from tests.support.processes import Counts, process_env, run_worker, store_messages
from tests.support.servers import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.faults]

BATCH = 10
NTH = 3  # crash at the third time the point is reached

# What has been applied (effects committed) when the worker dies, for the NTH occurrence.
COMMITTED_AT_CRASH = {
    "after_claim": (NTH - 1) * BATCH,  # two whole batches applied, the third only claimed
    "after_effect": NTH - 1,           # the third effect is written but never committed
    "before_commit": NTH - 1,          # the third apply is complete but never committed
    "after_commit": NTH,               # the third apply committed, the rest of its batch not
}


def _crashing_worker(env: dict[str, str]) -> int:
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "worker", "--json", "--once"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    return result.returncode


@pytest.mark.parametrize("point", list(COMMITTED_AT_CRASH))
def test_a_worker_dying_at_each_point_inside_processing_loses_nothing_and_doubles_nothing(
        cluster_url, point):
    total = scale(40, 1_000)
    store_messages(cluster_url, total)
    env = {**process_env(cluster_url), "PIPELINE_BATCH_SIZE": str(BATCH),
           "PIPELINE_HANDLER_MODULES": "tests.pipeline.process_handlers,tests.faults.crash_points"}
    counts = Counts(cluster_url)
    try:
        crashed = _crashing_worker({**env, "FAULT_CRASH_AT": point,
                                    "FAULT_CRASH_NTH": str(NTH)})
        assert crashed == CRASH_EXIT, f"the worker did not reach {point} (exit {crashed})"
        at_crash = counts()
        assert (at_crash["effects"], at_crash["processed"]) == (COMMITTED_AT_CRASH[point],) * 2
        time.sleep(2.2)  # the dead worker's claims (2 s leases) run out
        recovered = run_worker(env, "--once")
        after = counts()
    finally:
        counts.close()
    assert recovered["expired"] >= 1, recovered  # the dead worker's claims were retaken
    assert after["messages"] == total
    assert (after["processed"], after["effects"], after["applied"]) == (total, total, total)
    assert after["applied_twice"] == 0

