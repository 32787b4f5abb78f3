"""The evidence pack against a console served in-process (its real ingress over HTTP on loopback,
a database of its own), through the CLI, with ``--drain`` standing in for the worker."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from werkzeug.serving import WSGIRequestHandler, make_server

from console import create_app
from console.audit.settings import AuditSettings
from console.cli import register_commands
from console.db import Database, make_engine
from console.evidence.pack import MANIFEST, SIGNATURE, verify_pack
from console.evidence.scenarios import SCENARIOS
from console.finci.contract import is_finci_id
from console.finci.webhook_signature import WebhookSecret
from console.ingress.settings import IngressSettings
from console.security.redaction import find_pans
from tests.conftest import make_settings
from tests.support.secret_scan import known_secrets

SECRET = WebhookSecret(b"evidence-pack-test-secret-012345")
KEY = Ed25519PrivateKey.generate()


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):
        pass


@pytest.fixture
def console(db_factory):
    url = db_factory.fresh()
    ingress = IngressSettings(secrets=(SECRET,), rate_limit_per_s=1_000_000.0,
                              rate_limit_burst=1_000_000)
    engine = make_engine(url, pool_size=10)
    database = Database(engine)
    app = create_app(make_settings(url, ingress=ingress,
                                   audit=AuditSettings(export_signing_key=KEY)),
                     database=database)
    register_commands(app)  # as wsgi.py does
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_Quiet)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02},
                              daemon=True)
    thread.start()
    yield app, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join(5)
    engine.dispose()


def _run(app, url, out: Path, *extra):
    result = app.test_cli_runner().invoke(args=[
        "evidence", "run", "--out", str(out), "--console-url", url, "--drain", "--wait", "10",
        "--json", *extra])
    return result, json.loads(result.output.splitlines()[-1]) if result.output else None


def _scan(out: Path) -> tuple[list, list]:
    pans, leaked = [], []
    secrets = [*known_secrets(), SECRET.export()]
    for path in out.iterdir():
        text = path.read_text(encoding="utf-8")
        pans += [(path.name, p) for p in find_pans(text, is_finci_id)]
        leaked += [(path.name, s[:4]) for s in secrets if s in text]
    return pans, leaked


TEST_PAN = "5555555555554444"  # a well-known test card number, in every merchant name


def test_all_twelve_steps_pass_with_files_and_a_valid_signature(console, tmp_path, monkeypatch):
    from console.simulator.scenarios import ScriptBuilder

    monkeypatch.setattr(ScriptBuilder, "merchant", lambda self, choices=None: {
        "name": f"Shop {TEST_PAN}", "mcc": "5411", "country": "DE"})
    app, url = console
    out = tmp_path / "pack"
    result, summary = _run(app, url, out)
    assert result.exit_code == 0, result.output
    assert summary["passed"] == 12, [s for s in summary["steps"] if not s["passed"]]
    names = {p.name for p in out.iterdir()}
    assert {f"{s.slug}.json" for s in SCENARIOS} <= names
    assert {"report.html", MANIFEST, SIGNATURE, "summary.json"} <= names
    assert verify_pack(out, KEY.public_key()) == []
    assert summary["signed"] is True
    # Evidence content: what was sent, what the console stored, the ledger.
    approve = json.loads((out / "04-approve.json").read_text())
    assert approve["result"] == "pass"
    assert approve["sent"][0]["request"]["headers"]["webhook-signature"] == "v1,<masked>"
    assert approve["sent"][0]["latency_ms"] > 0
    assert approve["received"] and approve["received"][0]["deliveries"][0]["headers"]
    assert approve["transactions"][0]["events"]
    clearing = json.loads((out / "09-clearing.json").read_text())
    assert [p["kind"] for p in clearing["ledger_postings"]] == ["funding", "presentment"]
    report = (out / "report.html").read_text()
    assert "12 of 12 steps passed" in report and "http" not in report.split("<body>")[0]
    # Tampering is detected.
    (out / "05-decline.json").write_text("{}")
    assert verify_pack(out, KEY.public_key()) == ["05-decline.json was changed"]
    # Nothing in the pack is a full card number or a secret, though every message carried one.
    assert approve["sent"][0]["request"]["body"]["merchant"]["name"] == "Shop 555555******4444"
    assert _scan(out) == ([], [])


def test_duplicates_applied_twice_fail_exactly_that_step(console, tmp_path, monkeypatch):
    """Break the console: a presentment delivered more than once posts once per delivery."""
    from sqlalchemy import func, select

    from console.ingress.models import StoredMessage, WebhookDelivery
    from console.ledger import services as ledger

    original = ledger.post_journal

    def post_per_delivery(session, *, kind, reference, **kwargs):
        journal = original(session, kind=kind, reference=reference, **kwargs)
        finci_id = reference.partition(":")[2]
        deliveries = session.scalar(select(func.count()).select_from(WebhookDelivery).join(
            StoredMessage, StoredMessage.id == WebhookDelivery.message_id).where(
            StoredMessage.finci_id == finci_id, StoredMessage.type == kind))
        for copy in range(1, deliveries or 1):
            original(session, kind=kind, reference=f"{reference}:again{copy}", **kwargs)
        return journal

    monkeypatch.setattr(ledger, "post_journal", post_per_delivery)
    app, url = console
    out = tmp_path / "pack"
    result, summary = _run(app, url, out)
    assert result.exit_code == 1, result.output
    failed = [s for s in summary["steps"] if not s["passed"]]
    assert failed == [{"scenario": "08-repeated-delivery", "passed": False,
                       "reason": "the duplicate delivery was applied 3 times: 3 postings"}]
    evidence = json.loads((out / "08-repeated-delivery.json").read_text())
    assert evidence["result"] == "fail" and evidence["reason"] == failed[0]["reason"]
    assert "FAIL" in (out / "report.html").read_text()
    assert verify_pack(out, KEY.public_key()) == []


def test_an_existing_folder_is_refused_before_anything_is_sent(console, tmp_path):
    app, url = console
    (tmp_path / "old.txt").write_text("x")
    result = app.test_cli_runner().invoke(args=[
        "evidence", "run", "--out", str(tmp_path), "--console-url", url])
    assert result.exit_code == 2
    assert "not an empty folder" in result.output
