"""`make demo`: the whole console on one machine with the embedded defaults.

Starts, and supervises until Ctrl-C: the local OpenID Connect provider (idp/), the console under
gunicorn with TLS on https://localhost:8443, the worker, the scheduler and the FINCI simulator in
steady mode. State (SQLite database, generated secrets, certificate) lives in `.demo/` and
survives restarts; delete that folder to start over.

Nothing here is used in production: it only sets environment variables and starts the same
commands an operator would run (`flask --app wsgi db upgrade`, `gunicorn ...`, `flask --app
wsgi worker`, `flask --app wsgi scheduler`).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests

from console.devcert import write_self_signed
from console.simulator.scenarios import SCENARIOS

ROOT = Path(__file__).resolve().parent.parent
# oncall2 is a second on-call engineer: four-eyes kill switch requests need someone else to approve.
PERSONAS = ("viewer", "operator", "oncall", "oncall2", "compliance", "admin")
# The simulator's run and `flask demo seed` get the same seed and card count, so the console
# knows every card the simulator scripts (both read the book from scenarios.run_book).
SIMULATOR_SEED = 1
# How long the children get to exit after TERM before they are killed (gunicorn finishes its
# in-flight requests; the simulator sends its pending advices).
STOP_TIMEOUT_S = 15.0


def _ed25519_pem() -> str:
    """A fresh audit export signing key (`flask --app wsgi audit public-key` shows its pair)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    return Ed25519PrivateKey.generate().private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()


@dataclass
class Child:
    name: str
    process: subprocess.Popen
    log_path: Path


@dataclass
class Demo:
    state: Path
    port: int
    idp_port: int
    card_api_port: int
    simulate: bool
    rate: float
    children: list[Child] = field(default_factory=list)
    console_env: dict[str, str] = field(default_factory=dict)
    stop_timeout: float = STOP_TIMEOUT_S

    # --- state -------------------------------------------------------------------------------

    def _secret(self, name: str, make) -> Path:
        path = self.state / name
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(make())
        return path

    def _master_key(self) -> Path:
        """The local keystore's master key: never inside the repository (the keystore refuses
        that, so it cannot end up in a commit), so for a state folder inside the checkout it
        lives in the user's state directory, one per checkout."""
        from console.secrets.local import generate_master_key

        if self.state.resolve().is_relative_to(ROOT):
            base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
            digest = hashlib.sha256(str(ROOT).encode()).hexdigest()[:12]
            path = base / "finci-console" / f"demo-master-{digest}.key"
        else:
            path = self.state / "master.key"
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.exists():
            generate_master_key(path)
        return path

    def prepare(self) -> dict[str, str]:
        self.state.mkdir(parents=True, exist_ok=True)
        (self.state / "logs").mkdir(exist_ok=True)
        write_self_signed(self.state / "cert.pem", self.state / "key.pem")
        from console.finci.webhook_signature import WebhookSecret

        secret_key = self._secret("secret_key", lambda: secrets.token_urlsafe(48))
        webhook_secret = self._secret("webhook_secret", lambda: WebhookSecret.generate().export())
        client_secret = self._secret("oidc_client_secret", lambda: secrets.token_urlsafe(32))
        api_token = self._secret("finci_api_token", lambda: secrets.token_urlsafe(24))
        api_secret = self._secret("finci_api_secret", lambda: secrets.token_urlsafe(32))
        audit_key = self._secret("audit_export_signing_key", _ed25519_pem)
        master_key = self._master_key()
        checkpoints = self.state / "audit-checkpoints"
        checkpoints.mkdir(mode=0o700, exist_ok=True)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("CONSOLE_", "OIDC_", "FINCI_", "DATABASE_", "SECRET_KEY",
                                    "AUDIT_EXPORT_", "AUDIT_CHECKPOINT_"))}
        # The console's own configuration, the same for every process and for `.demo/env`.
        # Secrets only as *_FILE paths: the values stay in their 0600 files in the state folder
        # and never appear in an environment listing, the env file or a log.
        self.console_env = {
            "CONSOLE_ENVIRONMENT": "sandbox",
            "CONSOLE_MODE": "development",
            "SECRET_KEY_FILE": str(secret_key),
            "DATABASE_URL": f"sqlite:///{self.state / 'console.sqlite3'}",
            "CONSOLE_BIND": f"127.0.0.1:{self.port}",
            "TLS_CERT_FILE": str(self.state / "cert.pem"),
            "TLS_KEY_FILE": str(self.state / "key.pem"),
            "WEB_CONCURRENCY": "2",
            "OIDC_CLIENT_ID": "finci-console",
            "OIDC_CLIENT_SECRET_FILE": str(client_secret),
            "FINCI_WEBHOOK_SECRETS_FILE": str(webhook_secret),
            "FINCI_API_BASE_URL": f"http://127.0.0.1:{self.card_api_port}",
            "FINCI_API_TOKEN_FILE": str(api_token),
            "FINCI_API_SECRET_FILE": str(api_secret),
            "AUDIT_EXPORT_SIGNING_KEY_FILE": str(audit_key),
            # Signed checkpoints kept outside the database too (console.audit.checkpoint_files).
            "AUDIT_CHECKPOINT_DIR": str(checkpoints),
            # The embedded secret store (card-data private keys, rotated webhook secrets).
            "SECRETS_BACKEND": "local",
            "SECRETS_LOCAL_DIR": str(self.state / "secrets"),
            "SECRETS_LOCAL_MASTER_KEY_FILE": str(master_key),
        }
        env.update(self.console_env, PYTHONPATH=str(ROOT),
                   DEMO_CONSOLE_URL=f"https://localhost:{self.port}")
        return env

    def write_env_file(self) -> Path:
        """`.demo/env`: the running demo's configuration for `flask --app wsgi ...` in another
        shell (`. .demo/env`). Secrets as file paths only; 0600 anyway, since it says where
        they are."""
        path = self.state / "env"
        lines = ["# The running demo's configuration: `. .demo/env`, then `flask --app wsgi ...`",
                 *(f"export {name}={shlex.quote(value)}"
                   for name, value in sorted(self.console_env.items())),
                 # This checkout's `flask`, and its `wsgi` from any directory.
                 f"export PYTHONPATH={shlex.quote(str(ROOT))}",
                 f'export PATH={shlex.quote(str(Path(sys.executable).parent))}:"$PATH"']
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # an older file keeps its mode through O_TRUNC
        with os.fdopen(fd, "w") as handle:
            handle.write("\n".join(lines) + "\n")
        return path

    # --- processes ---------------------------------------------------------------------------

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> Child:
        log_path = self.state / "logs" / f"{name}.log"
        with _STOP.held():  # a stop request waits until the child is recorded
            log = open(log_path, "ab")  # noqa: SIM115 - owned by the child for its lifetime
            process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True)
            child = Child(name, process, log_path)
            self.children.append(child)
        return child

    def start_idp(self, env: dict[str, str]) -> str:
        base = env["DEMO_CONSOLE_URL"]
        idp_env = dict(env, IDP_PORT=str(self.idp_port), IDP_CLIENT_ID=env["OIDC_CLIENT_ID"],
                       IDP_CLIENT_SECRET=Path(env["OIDC_CLIENT_SECRET_FILE"]).read_text(),
                       IDP_REDIRECT_URIS=f"{base}/auth/callback",
                       IDP_POST_LOGOUT_REDIRECT_URIS=f"{base}/ {base}/auth/signed-out")
        node = shutil.which("node") or "node"
        with _STOP.held():
            process = subprocess.Popen([node, "server.js"], cwd=ROOT / "idp", env=idp_env,
                                       stdout=subprocess.PIPE, stderr=open(  # noqa: SIM115
                                           self.state / "logs" / "idp.log", "ab"),
                                       stdin=subprocess.DEVNULL, start_new_session=True)
            self.children.append(Child("idp", process, self.state / "logs" / "idp.log"))
        line = process.stdout.readline().decode()
        if not line:
            raise SystemExit("the identity provider did not start; see .demo/logs/idp.log")
        return json.loads(line)["issuer"]

    def flask(self, env: dict[str, str], *args: str) -> None:
        result = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", *args],
                                cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise SystemExit(f"`flask {' '.join(args)}` failed:\n{result.stderr[-3000:]}")

    def wait_healthy(self, url: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_children()
            try:
                if requests.get(url, timeout=1, verify=str(self.state / "cert.pem")).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise SystemExit(f"{url} did not become healthy; see .demo/logs/")

    def check_children(self) -> None:
        for child in self.children:
            # Not reaped here (``stop`` sweeps the group of an exited child, then reaps it).
            ended = _exited(child.process.pid)
            if ended:
                raise SystemExit(f"{child.name} stopped (status {ended.si_status}); "
                                 f"see {child.log_path}")

    def stop(self) -> None:
        """Stop every child and everything it started: TERM to each child's process group, up
        to ``stop_timeout`` seconds for all of them to exit, then KILL.

        Each child leads its own process group (``start_new_session``), so gunicorn's workers
        and anything else a child started go with it. A group is swept with KILL as soon as its
        leader has exited (stragglers have no one left to stop them); the leader is reaped only
        after that, so its pid, which is the group's id, cannot have been reused meanwhile.
        """
        running = [c for c in self.children if c.process.returncode is None]
        for child in reversed(running):
            _signal_group(child.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        while running:
            for child in list(running):
                if _exited(child.process.pid):
                    _signal_group(child.process.pid, signal.SIGKILL)
                    child.process.wait()
                    running.remove(child)
            if running and time.monotonic() >= deadline:
                for child in running:
                    _signal_group(child.process.pid, signal.SIGKILL)
                    child.process.wait()
                running = []
            elif running:
                time.sleep(0.05)

    def run(self) -> None:
        env = self.prepare()
        issuer = self.start_idp(env)
        env["OIDC_ISSUER"] = self.console_env["OIDC_ISSUER"] = issuer
        env_file = self.write_env_file()
        self.flask(env, "db", "upgrade")
        cards = ["--seed", str(SIMULATOR_SEED), "--cards", str(SCENARIOS["steady"].cards)]
        if _has_command(env, "demo"):
            self.flask(env, "demo", "seed", *cards)
        flask = [sys.executable, "-m", "flask", "--app", "wsgi"]
        self.start("web", [str(Path(sys.executable).parent / "gunicorn"), "-c",
                           str(ROOT / "gunicorn.conf.py"), "wsgi:app"], env)
        self.wait_healthy(f"{env['DEMO_CONSOLE_URL']}/healthz")
        if _has_command(env, "worker"):
            self.start("worker", [*flask, "worker"], env)
        self.start("scheduler", [*flask, "scheduler"], env)
        if self.simulate and (ROOT / "console" / "simulator").exists():
            self.start("simulator", [
                sys.executable, "-m", "console.simulator", "steady",
                "--console-url", env["DEMO_CONSOLE_URL"],
                "--secret-file", env["FINCI_WEBHOOK_SECRETS_FILE"],
                "--ca-file", str(self.state / "cert.pem"),
                "--rate", str(self.rate), *cards,
                "--card-api-port", str(self.card_api_port),
                "--card-api-token-file", env["FINCI_API_TOKEN_FILE"],
                "--card-api-secret-file", env["FINCI_API_SECRET_FILE"],
            ], env)
        print(_banner(env["DEMO_CONSOLE_URL"], issuer, self.state, env_file), flush=True)
        while True:
            self.check_children()
            time.sleep(1)


def _exited(pid: int) -> os.waitid_result | None:
    """How the child ``pid`` ended, or None while it runs. It is left unreaped (WNOWAIT): a
    zombie keeps its pid, the id of the process group it leads, from being reused."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # the whole group is gone already
        os.killpg(pgid, signum)


class _StopRequest:
    """SIGTERM or Ctrl-C, as the supervisor sees them.

    The first one interrupts the supervisor (KeyboardInterrupt), but never between starting a
    child and recording it (``held``: it is raised right after), so no child escapes ``stop``.
    Repeats are absorbed: a second TERM (a process manager or an impatient user repeating
    it) cannot cut the shutdown short and leave children running. (Blocking the signals
    instead would not do: children inherit the signal mask and would ignore TERM.)
    """

    def __init__(self) -> None:
        self.requested = False
        self.holding = False
        self.pending = False

    def handle(self, *_args: object) -> None:
        if self.requested:
            return
        self.requested = True
        if self.holding:
            self.pending = True
            return
        raise KeyboardInterrupt

    @contextlib.contextmanager
    def held(self):
        self.holding = True
        try:
            yield
        finally:
            self.holding = False
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt


_STOP = _StopRequest()


def supervise(demo: Demo, work: Callable[[], None]) -> None:
    """Run ``work`` (starting and watching the children) until Ctrl-C, SIGTERM or a child
    stopping, then stop every child (see :class:`_StopRequest` for repeated signals)."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _STOP.handle)
    try:
        work()
    except KeyboardInterrupt:
        print("\nstopping…", flush=True)
    finally:
        _STOP.requested = True  # a child that stopped on its own ends the demo too
        demo.stop()


def _has_command(env: dict[str, str], name: str) -> bool:
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", name, "--help"],
                            cwd=ROOT, env=env, capture_output=True, check=False)
    return result.returncode == 0


def _banner(url: str, issuer: str, state: Path, env_file: Path) -> str:
    personas = ", ".join(PERSONAS)
    return (
        "\n  FINCI console demo (sandbox) is running\n"
        f"    console:   {url}   (self-signed certificate: {state / 'cert.pem'})\n"
        f"    sign in:   one click as any persona ({personas}) on the local identity provider\n"
        f"    identity:  {issuer}\n"
        f"    logs:      {state / 'logs'}/\n"
        f"    CLI:       . {env_file}   then e.g. flask --app wsgi keys status\n"
        "  Ctrl-C stops everything; delete .demo/ to start from scratch.\n"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", type=Path, default=ROOT / ".demo")
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument("--idp-port", type=int, default=8444)
    parser.add_argument("--card-api-port", type=int, default=8445)
    parser.add_argument("--rate", type=float, default=2.0, help="simulated messages per second")
    parser.add_argument("--no-simulator", action="store_true")
    args = parser.parse_args(argv)
    demo = Demo(state=args.state_dir.resolve(), port=args.port, idp_port=args.idp_port,
                card_api_port=args.card_api_port, simulate=not args.no_simulator,
                rate=args.rate)
    supervise(demo, demo.run)


if __name__ == "__main__":
    main()
