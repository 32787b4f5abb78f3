"""Each check computed from seeded data, against its threshold."""

import datetime as dt
import itertools

import pytest

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
