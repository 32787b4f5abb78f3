"""The README's CLI against the demo: `flask --app wsgi ... --help` needs no configuration, and
`.demo/env` configures a second shell for the running demo without holding a secret."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from console.demo import Demo
from tests.support.servers import ROOT, free_port

pytestmark = pytest.mark.slow


def _flask(env, *args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def clean_env(tmp_path):
    return {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}


def test_flask_help_lists_the_commands_without_any_configuration(clean_env):
    result = _flask(clean_env, "--help")
    assert result.returncode == 0, result.stderr
    for command in ("audit", "db", "demo", "keys", "scheduler", "simulate", "worker"):
        assert f"\n  {command} " in result.stdout, command
    assert "configuration error" not in result.stdout + result.stderr


@pytest.mark.parametrize("command", [("db", "upgrade"), ("audit", "public-key"),
                                     ("scheduler",), ("scheduler", "jobs"), ("worker",)])
def test_a_subcommands_help_works_without_any_configuration(clean_env, command):
    result = _flask(clean_env, *command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Usage: python -m flask {' '.join(command)} ")


@pytest.mark.parametrize("command", [("db", "upgrade"), ("scheduler",)])
def test_running_a_command_without_configuration_names_the_problem(clean_env, command):
    result = _flask(clean_env, *command)
    assert result.returncode == 2
    assert "configuration error: CONSOLE_ENVIRONMENT is required" in result.stderr


def test_the_demo_env_file_configures_the_cli_from_anywhere_and_holds_no_secret(tmp_path):
    demo = Demo(state=tmp_path / "state", port=free_port(), idp_port=free_port(),
                card_api_port=free_port(), simulate=False, rate=1.0)
    env = demo.prepare()
    env_file = demo.state / "env"
    env_file.write_text("stale\n")
    env_file.chmod(0o644)
    demo.console_env["OIDC_ISSUER"] = env["OIDC_ISSUER"] = "https://localhost:8444/"
    assert demo.write_env_file() == env_file
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    text = env_file.read_text()
    assert f"export DATABASE_URL=sqlite:///{demo.state / 'console.sqlite3'}" in text
    secrets = [name for name in demo.console_env
               if name.endswith("_FILE") and name != "TLS_CERT_FILE"]
    assert len(secrets) >= 6
    for name in secrets:
        assert f"export {name}={env[name]}" in text
        value = Path(env[name]).read_text().strip()
        assert value and value not in text, name
    # A second shell, in another directory, with nothing but the file.
    shell = subprocess.run(
        ["bash", "-c", f". {env_file} && flask --app wsgi db upgrade --json"
                       " && flask --app wsgi keys status --json"],
        cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True, text=True, timeout=120, check=False)
    assert '"revision"' in shell.stdout, shell.stderr[-2000:]
    assert '"environment": "sandbox"' in shell.stdout
    for name in secrets:
        value = Path(env[name]).read_text().strip()
        assert value not in shell.stdout + shell.stderr, name
