"""`make demo` end to end: the demo runner starts every process; within a minute an operator
signed in through the real identity provider sees live deliveries and decisions."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import requests

from tests.support.oidc_provider import complete_login, ensure_idp_installed, parse_forms
from tests.support.servers import ROOT, free_port

pytestmark = pytest.mark.slow
LIVE_DATA_WITHIN_S = 60


@pytest.fixture
def demo(tmp_path):
    ensure_idp_installed()
    ports = {"port": free_port(), "idp": free_port(), "card_api": free_port()}
    log = (tmp_path / "demo.out").open("w")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CONSOLE_", "OIDC_", "FINCI_", "DATABASE_URL", "SECRET_KEY"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "console.demo", "--state-dir", str(tmp_path / "state"),
         "--port", str(ports["port"]), "--idp-port", str(ports["idp"]),
         "--card-api-port", str(ports["card_api"]), "--rate", "5"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    started = time.monotonic()
    url = f"https://localhost:{ports['port']}"
    yield url, tmp_path, started, process
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    log.close()


def _wait_running(tmp_path, process, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        output = (tmp_path / "demo.out").read_text()
        if "is running" in output:
            return
        if process.poll() is not None:
            pytest.fail(f"demo exited {process.returncode}:\n{output[-3000:]}")
        time.sleep(0.5)
    pytest.fail("demo did not start in time:\n" + (tmp_path / "demo.out").read_text()[-3000:])


def _sign_in(url: str, ca: str, persona: str) -> requests.Session:
    http = requests.Session()
    # The machine's REQUESTS_CA_BUNDLE would otherwise override a session-level verify.
    http.trust_env = False
    http.verify = ca
    page = http.get(f"{url}/auth/login", timeout=10)
    form = next(f for f in parse_forms(page.text) if f.action.endswith("/auth/login"))
    to_idp = http.post(f"{url}/auth/login", data=form.data(), allow_redirects=False, timeout=10)
    assert to_idp.status_code in (302, 303), to_idp.text[:500]
    callback = complete_login(http, to_idp.headers["Location"], persona)
    landed = http.get(callback, timeout=10)
    assert landed.status_code == 200, landed.text[:500]
    return http


def test_demo_shows_live_deliveries_and_decisions_within_a_minute(demo):
    url, tmp_path, started, process = demo
    _wait_running(tmp_path, process)
    running_at = time.monotonic()
    ca = str(tmp_path / "state" / "cert.pem")
    viewer = _sign_in(url, ca, "viewer")
    home = viewer.get(f"{url}/", timeout=10).text
    assert 'data-testid="environment-banner"' in home and "SANDBOX" in home
    seen = {}
    while time.monotonic() - running_at < LIVE_DATA_WITHIN_S:
        deliveries = viewer.get(f"{url}/pipeline/deliveries", timeout=10).text
        decisions = viewer.get(f"{url}/decisions/", timeout=10).text
        seen = {"deliveries": "authorization" in deliveries,
                "decisions": "approved" in decisions.lower() or "success" in decisions}
        if all(seen.values()):
            break
        time.sleep(2)
    elapsed = time.monotonic() - started
    assert all(seen.values()), f"no live data {elapsed:.0f}s after start: {seen}"
    print(f"demo: running after {running_at - started:.1f}s, live data after {elapsed:.1f}s")
