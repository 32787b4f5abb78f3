"""Operator card actions: the transition model before any call, an outbox row committed with its
audit row, FINCI called afterwards by the sender, failures retried, surfaced and retryable."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading

import pytest
from sqlalchemy import select

from console.audit import Actor
from console.audit.models import AuditEvent
from console.cards import actions
from console.cards.models import ActionStatus, Card, CardAction, CardStatusChange
from console.db import utcnow
from console.finci.contract import TokenStatus
from console.flows.services import Flow, set_flow
from console.monitoring import event_counts
from console.simulator.card_api_server import CardApiServer, Faults
from console.transactions.settings import LifecycleSettings
from tests.cards.conftest import API_SECRET, API_TOKEN
from tests.finci.test_card_api import SECRET as VECTOR_SECRET
from tests.finci.test_card_api import STATUS_VECTOR

OPERATOR = Actor.system("operator-test")


class Clock:
    """Real time plus however far the test has moved it on."""

    def __init__(self):
        self.offset = dt.timedelta(0)

    def __call__(self):
        return utcnow() + self.offset

    def advance(self, seconds):
        self.offset += dt.timedelta(seconds=seconds)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def send(test_database, lifecycle, clock):
    """Run the sender once, as the scheduler job does (no sleeping inside the client)."""
    def _send(settings: LifecycleSettings | None = None):
        settings = settings or lifecycle
        return actions.send_due(
            test_database.transaction,
            lambda: actions.card_api_client(settings, sleep=lambda _s: None,
                                            timeout=(1.0, 2.0)),
            settings, Actor.system("scheduler"), clock=clock)
    return _send


def audit(session, action) -> list[AuditEvent]:
    session.expire_all()
    return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)
                                .order_by(AuditEvent.seq)))


def local(session, token_id) -> Card:
    session.expire_all()
    return session.scalar(select(Card).where(Card.token_id == token_id))


def test_a_request_is_an_outbox_row_and_finci_is_called_only_by_the_sender(
        db_session, card, book, lifecycle, send):
    row = actions.request_action(db_session, OPERATOR, card.token_id, "deactivate",
                                 "customer asked to pause", lifecycle)
    db_session.commit()
    assert (row.status, row.from_status, row.target_status) == ("pending", "active",
                                                               "deactivated")
    assert book.get(card.token_id).token_status == TokenStatus.ACTIVE  # nothing sent yet
    [requested] = audit(db_session, "cards.status.request")
    assert json.loads(requested.details)["changes"]["status"] == {
        "before": "active", "after": "deactivated"}

    report = send()
    assert report.sent == [row.id]
    assert book.get(card.token_id).token_status == TokenStatus.DEACTIVATED
    assert local(db_session, card.token_id).status == "deactivated"
    change = db_session.scalar(select(CardStatusChange)
                               .where(CardStatusChange.action_id == row.id))
    assert (change.source, change.from_status, change.to_status, change.applied) == (
        "operator", "active", "deactivated", True)
    assert [e.outcome for e in audit(db_session, "cards.status.send")] == ["success"]
    assert send().summary == "nothing due"


@pytest.mark.parametrize(("status", "action", "message"), [
    ("lost", "reactivate", "end state"),
    ("stolen", "deactivate", "end state"),
    ("blocked", "report_lost", "end state"),
    ("active", "reactivate", "already active"),
    ("new", "deactivate", "only these are allowed"),
])
def test_the_transition_model_is_enforced_before_anything_is_written(
        db_session, card, lifecycle, status, action, message):
    card.status = status
    db_session.commit()
    with pytest.raises(actions.ActionRefused, match=message):
        actions.request_action(db_session, OPERATOR, card.token_id, action, "why", lifecycle)
    assert db_session.scalar(select(CardAction)) is None
    assert audit(db_session, "cards.status.request") == []


def test_allowed_actions_follow_the_model():
    assert actions.allowed_actions("active") == ["deactivate", "block", "report_lost",
                                                 "report_stolen"]
    assert actions.allowed_actions("deactivated") == ["reactivate", "block", "report_lost",
                                                      "report_stolen"]
    assert actions.allowed_actions("lost") == []


def test_a_reason_is_required_and_one_change_at_a_time(db_session, card, lifecycle):
    with pytest.raises(actions.ActionRefused, match="reason"):
        actions.request_action(db_session, OPERATOR, card.token_id, "block", "  ", lifecycle)
    actions.request_action(db_session, OPERATOR, card.token_id, "block", "fraud", lifecycle)
    with pytest.raises(actions.ActionRefused, match="already waiting"):
        actions.request_action(db_session, OPERATOR, card.token_id, "report_lost", "x",
                               lifecycle)


def test_while_card_actions_are_off_requests_are_queued_not_sent_then_sent_once(
        db_session, card, book, lifecycle, send):
    set_flow(db_session, OPERATOR, Flow.CARD_ACTIONS, enabled=False, reason="FINCI incident")
    db_session.commit()
    row = actions.request_action(db_session, OPERATOR, card.token_id, "block", "fraud",
                                 lifecycle)
    db_session.commit()
    assert (row.status, row.attempts) == ("pending", 0)
    assert audit(db_session, "cards.status.request")
    report = send()
    assert report.paused and report.sent == []
    assert book.get(card.token_id).token_status == TokenStatus.ACTIVE
    db_session.expire_all()
    assert db_session.get(CardAction, row.id).status == "pending"
    set_flow(db_session, OPERATOR, Flow.CARD_ACTIONS, enabled=True, reason="resolved")
    db_session.commit()
    assert send().sent == [row.id]
    assert send().summary == "nothing due"  # sent once
    assert book.get(card.token_id).token_status == TokenStatus.BLOCKED
    assert len(audit(db_session, "cards.status.send")) == 1


def test_failed_updates_are_retried_with_backoff_then_surfaced_and_retryable(
        db_session, card, book, lifecycle, send, clock):
    row = actions.request_action(db_session, OPERATOR, card.token_id, "deactivate", "pause",
                                 lifecycle)
    db_session.commit()
    with CardApiServer(book, API_TOKEN, API_SECRET, faults=Faults(error_rate=1.0)) as broken:
        failing = LifecycleSettings(api_base_url=broken.url, api_token=API_TOKEN,
                                    api_secret=API_SECRET, card_action_max_attempts=3)
        assert send(failing).retrying == [row.id]
        assert send(failing).summary == "nothing due"  # backing off: not due yet
        clock.advance(30)
        assert send(failing).retrying == [row.id]
        clock.advance(60)
        assert send(failing).failed == [row.id]
    db_session.expire_all()
    failed = db_session.get(CardAction, row.id)
    assert (failed.status, failed.attempts, failed.last_error) == (
        "failed", 3, "http; HTTP 503; service_unavailable")
    assert [a.id for a in actions.attention(db_session)] == [row.id]
    sends = audit(db_session, "cards.status.send")
    assert [e.outcome for e in sends] == ["failure"] * 3
    assert json.loads(sends[-1].details)["gave_up"] is True

    # A retry asked for while card actions are off is queued, and sent once they are back on.
    set_flow(db_session, OPERATOR, Flow.CARD_ACTIONS, enabled=False, reason="FINCI incident")
    actions.retry_action(db_session, OPERATOR, row.id)
    db_session.commit()
    assert send().paused
    set_flow(db_session, OPERATOR, Flow.CARD_ACTIONS, enabled=True, reason="resolved")
    db_session.commit()
    assert send().sent == [row.id]  # FINCI is back
    assert local(db_session, card.token_id).status == "deactivated"
    assert audit(db_session, "cards.status.retry")


def test_a_refusal_by_finci_fails_at_once(db_session, card, book, lifecycle, send):
    book.record(card.token_id, TokenStatus.LOST)  # FINCI knows better than our local view
    row = actions.request_action(db_session, OPERATOR, card.token_id, "deactivate", "pause",
                                 lifecycle)
    db_session.commit()
    key = event_counts.label_key({"kind": "rejected"})
    before = event_counts.event_totals(db_session)[event_counts.CARD_UPDATE_FAILURES].get(key, 0)
    assert send().failed == [row.id]
    db_session.expire_all()
    assert db_session.get(CardAction, row.id).last_error == (
        "rejected; HTTP 409; transition_not_allowed")
    after = event_counts.event_totals(db_session)[event_counts.CARD_UPDATE_FAILURES].get(key, 0)
    assert after == before + 1  # finci_card_update_failures_total{kind="rejected"}


def test_a_request_overtaken_by_an_end_state_is_refused_at_send_time(
        db_session, card, lifecycle, send):
    row = actions.request_action(db_session, OPERATOR, card.token_id, "deactivate", "pause",
                                 lifecycle)
    card = db_session.get(Card, card.id)
    card.status = "stolen"  # e.g. a card_status message processed in between
    db_session.commit()
    report = send()
    assert report.refused == [row.id]
    db_session.expire_all()
    assert db_session.get(CardAction, row.id).status == ActionStatus.REFUSED


def test_only_failed_actions_can_be_retried(db_session, card, lifecycle):
    row = actions.request_action(db_session, OPERATOR, card.token_id, "block", "fraud",
                                 lifecycle)
    with pytest.raises(actions.ActionRefused, match="only failed"):
        actions.retry_action(db_session, OPERATOR, row.id)


def test_without_card_api_settings_nothing_can_be_requested(db_session, card):
    with pytest.raises(actions.ActionRefused, match="not configured"):
        actions.request_action(db_session, OPERATOR, card.token_id, "block", "fraud",
                               LifecycleSettings())


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[dict] = []

    def do_PATCH(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Recorder.seen.append({"path": self.path, "body": body.decode(),
                               "signature": self.headers["X-Auth-Signature"],
                               "timestamp": self.headers["X-Auth-Timestamp"]})
        payload = b'{"status":"success","errors":[]}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *_args):
        pass


def test_the_configured_client_signs_exactly_as_the_fixed_vector():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        settings = LifecycleSettings(api_base_url=f"http://127.0.0.1:{server.server_port}",
                                     api_token="tok-live-0123456789",
                                     api_secret=VECTOR_SECRET.decode())
        with actions.card_api_client(settings, clock=lambda: 1700000000) as client:
            client.update_card_status("tok_123", "deactivated")
    finally:
        server.shutdown()
        server.server_close()
    assert _Recorder.seen[-1] == {"path": "/v1/update-card-status/tok_123",
                                  "body": '{"token_status":"deactivated"}',
                                  "signature": STATUS_VECTOR, "timestamp": "1700000000"}
