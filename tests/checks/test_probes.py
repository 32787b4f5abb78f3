"""Each check computed from seeded data, against its threshold."""

import datetime as dt
import itertools

import pytest
from sqlalchemy import select

from console.checks import probes
from console.checks.settings import ChecksSettings, SilenceWindow
from console.db import utcnow
from console.ingress.models import StoredMessage, WebhookDelivery
from console.simulator.card_api_server import CardApiServer
from console.simulator.cards import CardBook
from console.transactions.settings import LifecycleSettings

API_TOKEN = "checks-test-token"
API_SECRET = "checks-test-secret-0123456789"

_ids = itertools.count(1)


def _ctx(db_session, settings, now=None, **checks):
    return probes.Context(db_session, settings.replace(checks=ChecksSettings(**checks)),
                          now or utcnow())


def add_message(session, received_at, *, status="processed", skew_s=0):
    n = next(_ids)
    message = StoredMessage(
        webhook_id=f"msg_checks_{n}", business_key=f"presentment:checks-{n}",
        type="presentment", known_type=True, finci_id=f"checks-{n}",
        finci_created_at=received_at,
        webhook_timestamp=int(received_at.timestamp()) - skew_s, received_at=received_at,
        body="{}", body_sha256="0" * 64, verified_by="fp", answer_status=200, answer_body="{}",
        next_attempt_at=received_at, status=status)
    session.add(message)
    session.flush()
    return message


def test_the_database_check_passes_on_a_migrated_database(db_session, settings):
    finding = probes.database(_ctx(db_session, settings))
    assert finding.ok and "current revision" in finding.detail


def test_webhook_silence_uses_the_window_of_the_hour(db_session, settings):
    night = dt.datetime(2026, 12, 7, 3, 0, tzinfo=dt.UTC)
    day = dt.datetime(2026, 12, 7, 14, 0, tzinfo=dt.UTC)
    silence = SilenceWindow(15, ((0, 6, 120),))
    add_message(db_session, night - dt.timedelta(minutes=60))
    add_message(db_session, day - dt.timedelta(minutes=60))
    at_night = probes.webhook_silence(_ctx(db_session, settings, night, silence=silence))
    by_day = probes.webhook_silence(_ctx(db_session, settings, day, silence=silence))
    assert at_night.ok and at_night.detail == "1 deliveries in the last 120 min"
    assert not by_day.ok and by_day.detail == "no webhook deliveries in the last 15 min"


def test_backlog_age_fails_past_its_limit(db_session, settings):
    now = utcnow()
    add_message(db_session, now - dt.timedelta(seconds=400), status="pending")
    add_message(db_session, now - dt.timedelta(seconds=10), status="pending")
    assert not probes.backlog_age(_ctx(db_session, settings, now, backlog_age_s=300)).ok
    finding = probes.backlog_age(_ctx(db_session, settings, now, backlog_age_s=500))
    assert finding.ok and finding.detail == "2 waiting, oldest 400 s (limit 500 s)"


def test_dead_letters_are_counted_against_the_limit(db_session, settings):
    for _ in range(2):
        add_message(db_session, utcnow(), status="dead")
    assert probes.dead_letters(_ctx(db_session, settings)).detail == "2 dead letter(s) (limit 0)"
    assert not probes.dead_letters(_ctx(db_session, settings)).ok
    assert probes.dead_letters(_ctx(db_session, settings, dead_letters_max=2)).ok


def test_a_duplicate_spike_counts_only_the_last_15_minutes(db_session, settings):
    now = utcnow()
    message = add_message(db_session, now)
    for minutes, disposition in [(1, "duplicate"), (2, "conflict"), (3, "first"),
                                 (30, "duplicate")]:
        at = now - dt.timedelta(minutes=minutes)
        db_session.add(WebhookDelivery(message_id=message.id, webhook_id=message.webhook_id,
                                       received_at=at, disposition=disposition,
                                       body_sha256="0" * 64,
                                       webhook_timestamp=int(at.timestamp()),
                                       verified_by="fp", answer_status=200))
    db_session.flush()
    finding = probes.duplicate_spike(_ctx(db_session, settings, now, duplicate_spike=1))
    assert not finding.ok
    assert finding.detail == "2 duplicate deliveries in the last 15 min (limit 1)"


def test_clock_skew_is_the_median_over_recent_deliveries(db_session, settings):
    now = utcnow().replace(microsecond=0)
    for seconds, skew in [(10, 90), (20, 95), (30, 2)]:  # one slow delivery would not matter
        add_message(db_session, now - dt.timedelta(seconds=seconds), skew_s=skew)
    finding = probes.clock_skew(_ctx(db_session, settings, now, clock_skew_s=60))
    assert not finding.ok and finding.detail.startswith("median skew +90 s over 3 deliveries")
    assert probes.clock_skew(_ctx(db_session, settings, now, clock_skew_s=120)).ok


def test_no_recent_traffic_is_not_a_clock_problem(db_session, settings):
    assert probes.clock_skew(_ctx(db_session, settings)).ok


def test_the_audit_chain_check_verifies_the_log(db_session, settings):
    from console.audit.actions import AuditAction
    from console.audit.services import Actor, record

    record(db_session, actor=Actor.system("test"), action=AuditAction.DEMO_DATA_SEED)
    finding = probes.audit_chain(_ctx(db_session, settings))
    assert finding.ok and "audit rows verified" in finding.detail


@pytest.fixture
def finci():
    with CardApiServer(CardBook([]), API_TOKEN, API_SECRET) as server:
        yield server


def test_the_card_api_check_reaches_the_simulator_with_accepted_credentials(db_session,
                                                                            settings, finci):
    lifecycle = LifecycleSettings(api_base_url=finci.url, api_token=API_TOKEN,
                                  api_secret=API_SECRET)
    ctx = probes.Context(db_session, settings.replace(lifecycle=lifecycle), utcnow())
    finding = probes.card_api(ctx)
    assert finding.ok and "credentials accepted" in finding.detail


def test_the_card_api_check_fails_when_credentials_are_refused(db_session, settings, finci):
    lifecycle = LifecycleSettings(api_base_url=finci.url, api_token=API_TOKEN,
                                  api_secret="not-the-secret-" + "x" * 20)
    ctx = probes.Context(db_session, settings.replace(lifecycle=lifecycle), utcnow())
    finding = probes.card_api(ctx)
    assert not finding.ok and "refused" in finding.detail
    assert "not-the-secret" not in finding.detail


# --- the checks over decisions, failures, credentials and a broken chain ----------------------

def _decision(session, **kwargs):
    from tests.monitoring.test_metric_totals import _decision as seed

    return seed(session, **kwargs)


def test_timeout_rate_counts_safe_defaults_against_answered_requests(db_session, settings):
    for _ in range(9):
        _decision(db_session, total_ms=20.0)
    _decision(db_session, total_ms=1600.0, answer="error", reason="budget_exceeded",
              default_used=True)
    over = probes.timeout_rate(_ctx(db_session, settings, timeout_rate_percent=5.0))
    under = probes.timeout_rate(_ctx(db_session, settings, timeout_rate_percent=20.0))
    assert not over.ok and "1 of 10 answers late or defaulted (10.0 %" in over.detail
    assert under.ok


def test_decision_latency_fails_when_the_p99_passes_its_limit(db_session, settings):
    for ms in (10.0, 12.0, 900.0):
        _decision(db_session, total_ms=ms)
    slow = probes.decision_latency(_ctx(db_session, settings, decision_p99_ms=500.0))
    fine = probes.decision_latency(_ctx(db_session, settings, decision_p99_ms=1000.0))
    assert not slow.ok and slow.detail.startswith("p99 900 ms (limit 500 ms)")
    assert fine.ok


def test_failed_card_updates_are_counted_against_the_limit(db_session, settings):
    from console.cards.models import ActionStatus, CardAction
    from console.cards.services import issue_funded_card

    card = issue_funded_card(db_session, token_id="tok_checks_card", balance=0)
    now = utcnow()
    for _ in range(2):
        db_session.add(CardAction(card_id=card.id, token_id=card.token_id, action="block",
                                  from_status="active", target_status="blocked", reason="INC-1",
                                  requested_by="cli:test", requested_at=now,
                                  status=ActionStatus.FAILED, attempts=5, next_attempt_at=now))
    db_session.flush()
    failing = probes.card_update_failures(_ctx(db_session, settings, card_update_failures_max=1))
    assert not failing.ok and failing.detail.startswith("2 card status update(s) failed")
    assert probes.card_update_failures(_ctx(db_session, settings,
                                            card_update_failures_max=2)).ok


def test_a_certificate_expiring_soon_fails_the_credential_check(db_session, settings, tmp_path,
                                                                monkeypatch):
    from tests.keys.conftest import make_certificate

    cert = tmp_path / "cert.pem"
    now = utcnow()
    make_certificate(cert, not_before=now - dt.timedelta(days=1),
                     not_after=now + dt.timedelta(days=5))
    monkeypatch.setenv("TLS_CERT_FILE", str(cert))
    monkeypatch.setenv("TLS_KEY_FILE", str(cert))
    finding = probes.credential_expiry(_ctx(db_session, settings, credential_expiry_days=14))
    assert not finding.ok and "tls" in finding.detail


def test_a_tampered_audit_row_fails_the_chain_check(db_session, settings):
    from sqlalchemy import update

    from console.audit.actions import AuditAction
    from console.audit.models import AuditEvent
    from console.audit.services import Actor, record
    from tests.audit.conftest import lift_guards

    record(db_session, actor=Actor.system("test"), action=AuditAction.DEMO_DATA_SEED)
    record(db_session, actor=Actor.system("test"), action=AuditAction.DEMO_DATA_SEED)
    db_session.flush()
    newest = db_session.scalar(select(AuditEvent.seq).order_by(AuditEvent.seq.desc()).limit(1))
    lift_guards(db_session)  # the attacker with database access (rolled back after the test)
    db_session.execute(update(AuditEvent).where(AuditEvent.seq == newest)
                       .values(actor_id="someone-else"))
    finding = probes.audit_chain(_ctx(db_session, settings))
    assert not finding.ok and f"breaks at row {newest}" in finding.detail


def test_posting_failures_waiting_for_repair_are_counted_against_the_limit(db_session,
                                                                          settings):
    from console.transactions.models import CardTransaction, PostingStatus, TransactionPosting

    now = utcnow()
    for n in range(3):
        message = add_message(db_session, now)
        txn = CardTransaction(link_key=f"presentment:checks-post-{n}-{message.id}",
                              state="cleared", first_event_at=now, last_event_at=now)
        db_session.add(txn)
        db_session.flush()
        db_session.add(TransactionPosting(
            transaction_id=txn.id, message_id=message.id, kind="presentment",
            finci_id=message.finci_id, amount=100, currency="EUR", attempts=1,
            status=PostingStatus.FAILED if n < 2 else PostingStatus.SKIPPED,
            reason="unknown_card" if n < 2 else None))
    db_session.flush()
    failing = probes.posting_failures(_ctx(db_session, settings, posting_failures_max=1))
    assert not failing.ok and failing.detail.startswith("2 posting failure(s) waiting for repair")
    assert probes.posting_failures(_ctx(db_session, settings, posting_failures_max=2)).ok
