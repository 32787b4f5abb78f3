"""Notifiers against real servers on loopback: SMTP (aiosmtpd) and a JSON webhook
(threaded http.server); a failing notifier never breaks the check run."""

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller

from console.checks.alerts import Kind, Notification
from console.checks.notifiers import deliver
from console.checks.settings import ChecksSettings, SmtpTarget, WebhookFormat, WebhookTarget
from tests.checks.conftest import T0
from tests.support.servers import free_port

NOTE = Notification("card_api", "FINCI Card API reachable", Kind.FAILING,
                    "unreachable or failing: transport error", T0, 3)


class _Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp_server():
    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, inbox
    controller.stop()


class _Receiver(BaseHTTPRequestHandler):
    received: list
    status = 200

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.path, self.headers.get("Content-Type"),
                                     json.loads(body)))
        self.send_response(self.server.status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.received, server.status = [], 200
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def _url(server, path="/hooks/T000/secret-part"):
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


def test_an_alert_email_reaches_a_real_smtp_server(smtp_server):
    controller, inbox = smtp_server
    smtp = SmtpTarget("127.0.0.1", controller.port, "console@example.test",
                      ("oncall@example.test", "ops@example.test"), starttls=False)
    assert deliver([NOTE], ChecksSettings(smtp=smtp), "sandbox") == 0
    (message,) = inbox.messages
    assert message.mail_from == "console@example.test"
    assert message.rcpt_tos == ["oncall@example.test", "ops@example.test"]
    text = message.content.decode()
    assert "Subject: [sandbox] FAILING: FINCI Card API reachable (card_api)" in text
    assert "unreachable or failing: transport error" in text


@pytest.mark.parametrize("kind", list(WebhookFormat))
def test_the_webhook_notifier_posts_json_in_each_format(webhook_server, kind):
    target = WebhookTarget(_url(webhook_server), kind,
                           "pd-routing-key" if kind is WebhookFormat.PAGERDUTY else None)
    assert deliver([NOTE], ChecksSettings(webhook=target), "sandbox") == 0
    ((path, content_type, body),) = webhook_server.received
    assert path == "/hooks/T000/secret-part" and content_type == "application/json"
    if kind is WebhookFormat.SLACK:
        assert body["text"].startswith("[sandbox] FAILING: FINCI Card API reachable")
    elif kind is WebhookFormat.PAGERDUTY:
        assert body["event_action"] == "trigger" and body["routing_key"] == "pd-routing-key"
        assert body["dedup_key"] == "finci-console:sandbox:card_api"
        assert body["payload"]["severity"] == "critical"
    else:
        assert (body["check"], body["state"], body["consecutive_failures"]) == (
            "card_api", "failing", 3)
    assert "secret-part" not in json.dumps(body)  # the URL (a credential) is never echoed


def test_a_recovery_resolves_the_pagerduty_incident(webhook_server):
    target = WebhookTarget(_url(webhook_server), WebhookFormat.PAGERDUTY, "pd-routing-key")
    recovered = Notification("card_api", "Card API", Kind.RECOVERED, "ok", T0, 0)
    deliver([recovered], ChecksSettings(webhook=target), "production")
    body = webhook_server.received[0][2]
    assert body["event_action"] == "resolve"
    assert body["dedup_key"] == "finci-console:production:card_api"


def test_a_failing_notifier_is_counted_and_logged_without_its_url(webhook_server, caplog):
    webhook_server.status = 500
    smtp = SmtpTarget("127.0.0.1", free_port(), "a@example.test", ("b@example.test",),
                      starttls=False, timeout_s=1.0)
    policy = ChecksSettings(webhook=WebhookTarget(_url(webhook_server)), smtp=smtp)
    assert deliver([NOTE], policy, "sandbox") == 2
    assert "secret-part" not in caplog.text
    assert "webhook notification failed" in caplog.text
    assert "email notification failed" in caplog.text


def test_notifications_go_out_after_the_run_commits_and_never_after_a_rollback(
        test_database, check_settings, fake_checks, webhook_server):
    from console.checks.services import run_checks

    _db, api, checks = fake_checks
    api.ok = False
    settings = check_settings.replace(checks=ChecksSettings(
        failures_before_alert=1, webhook=WebhookTarget(_url(webhook_server))))
    with pytest.raises(RuntimeError), test_database.transaction() as session:
        run_checks(session, settings, T0, checks)
        raise RuntimeError("the run's transaction fails")
    assert webhook_server.received == []
    with test_database.transaction() as session:
        report = run_checks(session, settings, T0 + dt.timedelta(minutes=1), checks)
        assert len(report.notifications) == 1
        assert webhook_server.received == []  # not before the commit
    assert [r[2]["check"] for r in webhook_server.received] == ["card_api"]


def test_a_broken_notifier_does_not_undo_the_stored_results(test_database, check_settings,
                                                            fake_checks):
    from sqlalchemy import func, select

    from console.checks.models import CheckResult
    from console.checks.services import run_checks

    _db, api, checks = fake_checks
    api.ok = False
    dead = WebhookTarget(f"http://127.0.0.1:{free_port()}/nobody")
    settings = check_settings.replace(checks=ChecksSettings(failures_before_alert=1,
                                                            webhook=dead))
    with test_database.transaction() as session:
        run_checks(session, settings, T0, checks)
    with test_database.transaction() as session:
        assert session.scalar(select(func.count()).select_from(CheckResult)) == 2
