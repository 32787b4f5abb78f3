"""Real server processes for tests: gunicorn serving the console exactly as in production."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from console.devcert import write_self_signed

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def console_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONSOLE_", "OIDC_"))}
    env.update({
        "CONSOLE_ENVIRONMENT": "sandbox",
        "CONSOLE_MODE": "test",
        "SECRET_KEY": "gunicorn-test-secret-" + "s" * 32,
        "DATABASE_URL": database_url,
        "PYTHONPATH": str(ROOT),
    })
    env.update(extra)
    return env


class Gunicorn:
    """``with Gunicorn(env, tls_dir=...) as server: requests.get(server.url + "/healthz")``"""

    def __init__(self, env: dict[str, str], *, tls_dir: Path | None = None, workers: int = 2,
                 threads: int = 4, startup_timeout: float = 30.0):
        self.port = free_port()
        self.env = dict(env)
        self.env.update({"CONSOLE_BIND": f"127.0.0.1:{self.port}",
                         "WEB_CONCURRENCY": str(workers), "WEB_THREADS": str(threads)})
        self.scheme = "http"
        self.cert_path: Path | None = None
        if tls_dir is not None:
            self.cert_path, key_path = tls_dir / "cert.pem", tls_dir / "key.pem"
            write_self_signed(self.cert_path, key_path)
            self.env.update({"TLS_CERT_FILE": str(self.cert_path),
                             "TLS_KEY_FILE": str(key_path)})
            self.scheme = "https"
        self.url = f"{self.scheme}://127.0.0.1:{self.port}"
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen | None = None

    @property
    def verify(self):
        return str(self.cert_path) if self.cert_path else True

    def start(self) -> Gunicorn:
        # A file, not a pipe: an unread pipe fills up and blocks the server's logging.
        self._log_file = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [str(VENV_BIN / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"), "wsgi:app"],
            cwd=ROOT, env=self.env, stdout=self._log_file, stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}:\n"
                                   f"{self.output()[-4000:]}")
            try:
                response = requests.get(f"{self.url}/healthz", timeout=1, verify=self.verify)
                if response.status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("gunicorn did not become healthy in time")

    def output(self) -> str:
        """Everything the server has logged so far."""
        if self._log_file.closed:
            return self._final_output
        self._log_file.seek(0)
        return self._log_file.read().decode(errors="replace")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._final_output = self.output()
        self._log_file.close()

    def __enter__(self) -> Gunicorn:
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()
