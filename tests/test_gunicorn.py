"""The console as production runs it: gunicorn, TLS, startup checks in the master process."""

import json
import secrets
import stat
import subprocess
import sys
import time

import pytest
import requests

from console.finci.webhook_signature import WebhookSecret
from tests.support.secret_files import as_secret_files
from tests.support.servers import ROOT, Gunicorn, console_env

pytestmark = pytest.mark.slow


def _flask(env, *args):
    return subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def initialised(db_factory):
    url = db_factory.empty()
    env = console_env(url)
    result = _flask(env, "db", "upgrade", "--json")
    assert result.returncode == 0, result.stderr
    return env


def test_serves_https_pages_with_the_environment_banner(initialised, tmp_path, pan_scanner):
    with Gunicorn(initialised, tls_dir=tmp_path) as server:
        response = requests.get(server.url + "/", verify=server.verify, timeout=5)
        assert 'data-testid="environment-banner"' in response.text
        assert "SANDBOX" in response.text
        assert response.headers["Strict-Transport-Security"].startswith("max-age=")
        assert requests.get(server.url + "/readyz", verify=server.verify, timeout=5).json()[
            "status"] == "ok"
    pan_scanner.scan(server.output(), "gunicorn")


def test_requests_over_the_tls_it_serves_mark_the_certificate_used(initialised, tmp_path):
    server = Gunicorn(initialised, tls_dir=tmp_path)
    recorded = _flask(server.env, "keys", "record-configured")
    assert recorded.returncode == 0, recorded.stderr

    def tls_row():
        listed = _flask(server.env, "keys", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        rows = [r for r in json.loads(listed.stdout)["credentials"]
                if r["kind"] == "tls_certificate"]
        assert len(rows) == 1, rows
        return rows[0]

    assert tls_row()["last_used_at"] is None
    with server:
        requests.get(server.url + "/auth/login", verify=server.verify, timeout=5)
        deadline = time.monotonic() + 10  # written once the answer has been sent
        while tls_row()["last_used_at"] is None and time.monotonic() < deadline:
            time.sleep(0.2)
    assert tls_row()["last_used_at"] is not None


# A complete production configuration, so the only thing wrong is the database's environment.
PRODUCTION = {
    "CONSOLE_ENVIRONMENT": "production", "CONSOLE_MODE": "live",
    "SECRET_KEY": secrets.token_urlsafe(48), "CONSOLE_TRUSTED_PROXY_COUNT": "1",
    "FINCI_WEBHOOK_SECRETS": WebhookSecret.generate().export(),
    "OIDC_ISSUER": "https://idp.example.test", "OIDC_CLIENT_ID": "console",
    "OIDC_CLIENT_SECRET": secrets.token_urlsafe(32),
}


def test_refuses_to_start_against_the_other_environments_database(initialised, tmp_path):
    # On SQLite production is refused outright (it requires PostgreSQL), which is also a refusal.
    env = as_secret_files(dict(initialised, **PRODUCTION))
    server = Gunicorn(env, startup_timeout=20)
    with pytest.raises(RuntimeError) as refused:
        server.start()
    message = str(refused.value)
    assert ("belongs to the sandbox environment" in message
            or "production requires PostgreSQL" in message)


def test_db_upgrade_refuses_the_other_environments_database(initialised):
    env = as_secret_files(dict(initialised, **PRODUCTION))
    result = _flask(env, "db", "upgrade")
    assert result.returncode != 0
    assert "sandbox" in result.stderr or "PostgreSQL" in result.stderr


def test_configuration_errors_are_one_clear_line(initialised):
    env = dict(initialised, CONSOLE_ENVIRONMENT="staging")
    result = _flask(env, "db", "current")
    assert result.returncode != 0
    assert "configuration error: CONSOLE_ENVIRONMENT='staging' is not valid" in result.stderr
    assert "Traceback" not in result.stderr


def test_no_control_socket_is_shared_between_instances_unless_one_is_named(initialised,
                                                                           tmp_path):
    # gunicorn's default is one socket per user ($HOME/.gunicorn/gunicorn.ctl): two consoles on
    # one machine would share it and `gunicornc` would reach whichever started last.
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in initialised.items() if k != "XDG_RUNTIME_DIR"}
    env["HOME"] = str(home)
    with Gunicorn(env):
        assert not (home / ".gunicorn").exists()
    named = tmp_path / "console-a.ctl"
    with Gunicorn(dict(env, CONSOLE_CONTROL_SOCKET=str(named))) as server:
        deadline = time.monotonic() + 10
        while not named.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert named.is_socket(), server.output()[-2000:]
        assert stat.S_IMODE(named.stat().st_mode) == 0o600
    assert not (home / ".gunicorn").exists()


def test_a_bad_request_read_timeout_stops_gunicorn_with_one_line(initialised):
    server = Gunicorn(dict(initialised, CONSOLE_REQUEST_READ_TIMEOUT="forever"), startup_timeout=20)
    with pytest.raises(RuntimeError) as refused:
        server.start()
    assert "configuration error: CONSOLE_REQUEST_READ_TIMEOUT='forever' is not a number" in str(
        refused.value)
