"""`make evidence`: the evidence pack for the embedded demo, written to `.demo/evidence/<time>/`.

If the demo (`make demo`) is already running on its port, the pack is produced against it (its
worker processes the steps). Otherwise this starts the demo's console the way `make demo` does,
from the same state folder and secrets (`console.demo.Demo`): `flask db upgrade`, gunicorn with
TLS on a free port, and the worker; then runs `flask --app wsgi evidence run` against it and stops
everything. No identity provider or simulator is needed: the steps send their own traffic, and a
sandbox console starts without SSO.
"""

from __future__ import annotations

import argparse
import datetime as dt
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from console.demo import ROOT, Demo, supervise


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _running(url: str, cert: Path) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=1, verify=str(cert)).ok
    except requests.RequestException:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", type=Path, default=ROOT / ".demo")
    parser.add_argument("--demo-port", type=int, default=8443,
                        help="where a running `make demo` would answer")
    parser.add_argument("--out", type=Path, help="default: STATE/evidence/<UTC time>")
    args = parser.parse_args(argv)
    state = args.state_dir.resolve()
    out = args.out or state / "evidence" / dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    demo = Demo(state=state, port=args.demo_port, idp_port=0, card_api_port=_free_port(),
                simulate=False, rate=0.0)
    outcome = {"code": 1}

    def work() -> None:
        started = time.monotonic()
        env = demo.prepare()
        url = env["DEMO_CONSOLE_URL"]
        if not _running(url, state / "cert.pem"):
            demo.port = _free_port()
            env = demo.prepare()
            # No identity provider here: a sandbox console without SSO at all starts.
            for name in ("OIDC_CLIENT_ID", "OIDC_CLIENT_SECRET_FILE"):
                env.pop(name, None)
            env["PIPELINE_POLL_INTERVAL_S"] = "0.2"
            url = env["DEMO_CONSOLE_URL"]
            demo.flask(env, "db", "upgrade")
            demo.start("evidence-web", [str(Path(sys.executable).parent / "gunicorn"), "-c",
                                        str(ROOT / "gunicorn.conf.py"), "wsgi:app"], env)
            demo.wait_healthy(f"{url}/healthz")
            demo.start("evidence-worker",
                       [sys.executable, "-m", "flask", "--app", "wsgi", "worker"], env)
        run = subprocess.run(  # noqa: S603 - our own interpreter and arguments
            [sys.executable, "-m", "flask", "--app", "wsgi", "evidence", "run", "--out",
             str(out), "--console-url", url, "--ca-file", str(state / "cert.pem")],
            cwd=ROOT, env=env, check=False)
        outcome["code"] = run.returncode
        print(f"evidence pack: {out / 'report.html'} ({time.monotonic() - started:.1f} s)",
              flush=True)

    supervise(demo, work)
    return outcome["code"]


if __name__ == "__main__":
    sys.exit(main())
