import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask

from console.finci.card_api import CardApiClient
from console.finci.contract import MASKED_CARD_NUMBER_PATTERN as MASKED
from console.finci.webhook_signature import WebhookSecret
from console.security.redaction import find_pans
from console.simulator.commands import simulate_group

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cli():
    return CliRunner()


def invoke(cli, receiver, secret, *args, env=None):
    argv = [args[0], "--console-url", receiver.url, "--run-id", "cli", "--retry-base", "0",
            *args[1:]]
    if secret is not None:
        argv += ["--secret", secret.export()]
    return cli.invoke(simulate_group, argv, env=env)


def test_a_scenario_prints_its_summary_as_json(cli, receiver, secret):
    result = invoke(cli, receiver, secret, "happy-path", "--cards", "3", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["scenario"] == "happy-path" and summary["run_id"] == "cli"
    assert summary["sent"] == summary["acknowledged"] == len(receiver.received) > 0
    assert summary["deadline_s"] == 3.0


def test_the_default_output_is_a_table(cli, receiver, secret):
    result = invoke(cli, receiver, secret, "happy-path", "--cards", "2")
    assert result.exit_code == 0
    assert "ack latency" in result.stdout and "problems" in result.stdout


def test_problems_exit_with_1(cli, receiver, secret):
    result = invoke(cli, receiver, secret, "card-compromise", "--cards", "1", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["problems"]


def test_the_secret_can_come_from_a_file_or_the_environment(cli, receiver, secret, tmp_path):
    path = tmp_path / "secrets"
    path.write_text(f"{secret.export()} {WebhookSecret.generate().export()}\n")
    from_file = invoke(cli, receiver, None, "happy-path", "--cards", "1",
                       "--secret-file", str(path))
    assert from_file.exit_code == 0, from_file.output
    from_env = invoke(cli, receiver, None, "happy-path", "--cards", "1",
                      env={"FINCI_SIM_WEBHOOK_SECRET": secret.export()})
    assert from_env.exit_code == 0, from_env.output
    assert all(r.status == 200 for r in receiver.received)


@pytest.mark.parametrize("args", [
    ["--secret", "not-a-secret"],
    [],
    ["--secret", "whsec_" + "A" * 43 + "=", "--secret-file", __file__],
    ["--secret", "whsec_" + "A" * 43 + "=", "--run-id", "Bad Id"],
    ["--secret", "whsec_" + "A" * 43 + "=", "--duplicate-rate", "2"],
])
def test_usage_errors_exit_with_2(cli, receiver, args):
    result = cli.invoke(simulate_group, ["happy-path", "--console-url", receiver.url, *args],
                        env={"FINCI_SIM_WEBHOOK_SECRET": None})
    assert result.exit_code == 2


def test_a_non_loopback_plain_http_console_is_refused(cli, secret):
    result = cli.invoke(simulate_group, ["happy-path", "--console-url", "http://example.com",
                                         "--secret", secret.export()])
    assert result.exit_code == 2 and "loopback" in result.output


def test_delivery_options_override_the_scenario(cli, receiver, secret):
    result = invoke(cli, receiver, secret, "happy-path", "--cards", "2", "--json",
                    "--duplicate-rate", "1", "--malformed-rate", "1")
    summary = json.loads(result.stdout)
    assert summary["deliveries"]["duplicates"] >= summary["sent"]
    assert summary["bad_requests"]["sent"] == 2 == summary["bad_requests"]["rejected_4xx"]


def test_the_card_api_can_run_alongside(cli, receiver, secret):
    result = invoke(cli, receiver, secret, "card-compromise", "--cards", "1",
                    "--card-api-port", "0", "--card-api-token", "t", "--card-api-secret", "s")
    assert "card api on http://127.0.0.1:" in result.stderr


def test_the_card_api_needs_its_credentials(cli, receiver, secret):
    result = invoke(cli, receiver, secret, "happy-path", "--card-api-port", "0",
                    env={"FINCI_SIM_CARD_API_TOKEN": None, "FINCI_SIM_CARD_API_SECRET": None})
    assert result.exit_code == 2 and "card-api-token" in result.output


def test_list_names_every_scenario(cli):
    result = cli.invoke(simulate_group, ["list", "--json"])
    assert set(json.loads(result.stdout)) == {"happy-path", "timeout-storm", "duplicate-flood",
                                              "clearing-failures", "card-compromise", "steady"}


def test_cards_shows_the_run_book_masked_and_which_cards_get_scripts(cli):
    result = cli.invoke(simulate_group, ["cards", "--seed", "2", "--cards", "4", "--json"])
    rows = json.loads(result.stdout)["cards"]
    assert sum(r["scripted"] for r in rows) == 4
    assert all(re.fullmatch(MASKED, r["card_number"]) for r in rows)
    assert find_pans(result.stdout) == []


def test_the_flask_cli_has_the_simulate_group():
    from console.cli import register_commands

    app = Flask(__name__)
    register_commands(app)
    assert app.cli.get_command(None, "simulate") is simulate_group


# --- as separate processes, the way the demo runner starts it ---------------------------------


def _module(*args, env=None):
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "console.simulator", *args], cwd=ROOT,
                            env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_serve_card_api_runs_standalone_until_terminated(tmp_path):
    (tmp_path / "token").write_text("tok-123\n")
    process = _module("serve-card-api", "--port", "0", "--token-file", str(tmp_path / "token"),
                      "--json", env={"FINCI_SIM_CARD_API_SECRET": "sek"})
    try:
        started = json.loads(process.stdout.readline())
        with CardApiClient(started["url"], "tok-123", "sek", allow_http=True) as client:
            cards = client.get_cards(person_id=started["example_person_id"])
        assert cards.total >= 1
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=10)
    assert process.returncode is not None


def test_a_steady_run_ends_on_sigterm_with_its_summary(receiver, secret):
    process = _module("steady", "--console-url", receiver.url, "--rate", "30", "--cards", "3",
                      "--json", env={"FINCI_SIM_WEBHOOK_SECRET": secret.export()})
    deadline = time.monotonic() + 10
    while not receiver.received and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=15)
    assert process.returncode == 0, err
    summary = json.loads(out)
    assert summary["ended"] == "interrupted" and summary["sent"] > 0
