"""Stopping the demo: SIGTERM to its process group, even twice, stops every child and
everything the children started, within the stop timeout."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.servers import ROOT

pytestmark = pytest.mark.slow
STOP_TIMEOUT_S = 3.0


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has stopped; reaping it is its new parent's business


def _wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.fixture
def supervisor(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.demo_supervisor", str(tmp_path / "state"),
         str(STOP_TIMEOUT_S)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    pids: list[int] = []
    yield process, tmp_path / "state" / "pids", pids
    for pid in [process.pid, *pids]:  # whatever a failing test left behind
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    process.wait(10)
    process.stdout.close()


def test_a_second_sigterm_during_shutdown_still_stops_every_child(supervisor):
    process, pid_file, pids = supervisor
    assert process.stdout.readline().strip() == "ready"
    pids.extend(int(p) for p in pid_file.read_text().split())
    assert len(pids) == 4 and all(map(_alive, pids))
    os.killpg(process.pid, signal.SIGTERM)
    time.sleep(0.5)  # the supervisor is now waiting for the children to exit
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(STOP_TIMEOUT_S + 10)
    assert _wait_for(lambda: not any(map(_alive, pids)), 2), [p for p in pids if _alive(p)]
    assert "stopping" in process.stdout.read()
    # The children got the TERM (not only the KILL after the timeout) and could act on it.
    assert pid_file.with_name("pids.graceful").exists()
