"""The pack's parts on their own: masking of headers, the manifest check, a refused folder."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from console.evidence.pack import PackError, check_out_dir, verify_pack, write_pack
from console.evidence.runner import RunResult, StepResult, mask_headers
from console.evidence.scenarios import SCENARIOS

KEY = Ed25519PrivateKey.generate()
PAN = "4111111111111111"


def test_headers_keep_signature_versions_only_and_hide_secret_like_values():
    masked = mask_headers({"webhook-id": "msg_1", "webhook-signature": "v1,abc= v2,def=",
                           "X-Auth-Token": "tok", "Authorization": "Bearer x",
                           "Content-Type": "application/json"})
    assert masked == {"webhook-id": "msg_1", "webhook-signature": "v1,<masked> v2,<masked>",
                      "X-Auth-Token": "<masked>", "Authorization": "<masked>",
                      "Content-Type": "application/json"}


def _result(reason=None) -> RunResult:
    now = dt.datetime.now(dt.UTC).isoformat()
    step = StepResult(SCENARIOS[0], reason is None, reason, now, now,
                      {"sent": [{"request": {"body": {"merchant": {"name": f"Shop {PAN}"}}}}]})
    return RunResult("evtest", now, now, [step])


def test_no_card_number_reaches_any_file_and_unsigned_packs_say_so(tmp_path):
    out = tmp_path / "pack"
    manifest = write_pack(out, _result(), environment="sandbox", version="0.1.0",
                          console_url="http://127.0.0.1:1", signing_key=None)
    assert manifest["key_id"] is None and not (out / "manifest.sig").exists()
    for path in out.iterdir():
        assert PAN not in path.read_text()
    assert "411111******1111" in (out / "01-records-created.json").read_text()
    assert "UNSIGNED" in (out / "report.html").read_text()
    assert verify_pack(out, None) == []
    assert verify_pack(out, KEY.public_key()) == ["manifest.sig is missing or unreadable"]


def test_the_signature_detects_a_changed_manifest_and_extra_files(tmp_path):
    out = tmp_path / "pack"
    write_pack(out, _result("no advice received within 60 s"), environment="sandbox",
               version="0.1.0", console_url="http://127.0.0.1:1", signing_key=KEY)
    assert verify_pack(out, KEY.public_key()) == []
    assert verify_pack(out, Ed25519PrivateKey.generate().public_key()) == [
        "manifest.sig does not match manifest.json"]
    (out / "extra.txt").write_text("x")
    assert verify_pack(out, KEY.public_key()) == ["extra.txt is not in the manifest"]
    (out / "manifest.json").write_text("{")
    assert verify_pack(out, KEY.public_key()) == ["manifest.json is missing or unreadable"]


def test_a_folder_with_files_is_refused(tmp_path):
    (tmp_path / "x").write_text("x")
    with pytest.raises(PackError, match="not an empty folder"):
        check_out_dir(tmp_path)
    check_out_dir(tmp_path / "new")  # a new folder is fine


def _cli_app(environment):
    from flask import Flask

    from console.evidence.commands import evidence_group
    from console.settings import Environment
    from tests.conftest import make_settings

    app = Flask("evidence-test")
    app.extensions["settings"] = make_settings(environment=Environment(environment))
    app.cli.add_command(evidence_group)
    return app


@pytest.mark.parametrize("environment, args, message", [
    ("production", [], "sandbox only"),
    ("sandbox", ["--console-url", "http://example.com"], "loopback"),
    ("sandbox", ["--console-url", "https://user:pw@example.com"], "credentials"),
])
def test_refused_before_anything_is_created_or_sent(tmp_path, environment, args, message):
    app = _cli_app(environment)
    result = app.test_cli_runner().invoke(args=["evidence", "run", "--out",
                                                 str(tmp_path / "p"), *args])
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "p").exists()


def test_an_unreachable_console_fails_every_traffic_step_quickly(db_factory, tmp_path):
    """Nothing listens on the URL: no step waits for the worker; each says what was missing."""
    import time

    from console.audit import Actor
    from console.db import Database, make_engine
    from console.evidence.runner import EvidenceRun
    from console.finci.webhook_signature import WebhookSecret
    from console.migrate import upgrade
    from console.simulator.sender import RetryPolicy
    from tests.support.servers import free_port

    engine = make_engine(db_factory.fresh())
    upgrade(engine, "head")
    started = time.monotonic()
    run = EvidenceRun(Database(engine), f"http://127.0.0.1:{free_port()}",
                      WebhookSecret.generate(), actor=Actor.cli("test"), run_id="evdown",
                      wait_s=30, retry=RetryPolicy(max_attempts=1))
    result = run.run()
    engine.dispose()
    assert time.monotonic() - started < 20
    reasons = {s.scenario.slug: s.reason for s in result.steps}
    assert reasons["01-records-created"] is None
    assert reasons["04-approve"] == "no answer to authorization request auth_evdown_2"
    assert reasons["02-card-issued"] == "no card status message received within 30 s"
