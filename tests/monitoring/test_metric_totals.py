"""/metrics counters and histograms: figures from seeded data against hand-computed values,
moving as messages flow, unchanged by folding and by retention."""

from __future__ import annotations

import datetime as dt
import secrets

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import delete, select

from console.db import utcnow
from console.decisioning.models import DecisionRecord
from console.ingress.models import StoredMessage, WebhookDelivery
from console.monitoring import event_counts, folds
from console.monitoring.models import MetricEventCount, MetricFold
from console.monitoring.settings import MetricsSettings
from tests.conftest import make_settings
from tests.ingress.helpers import deliver, ingress_settings, message, new_webhook_id
from tests.support.ids import new_id

TOKEN = secrets.token_urlsafe(32)


@pytest.fixture
def settings(db_factory):
    return make_settings(db_factory.shared_url, metrics=MetricsSettings.with_token(TOKEN),
                         ingress=ingress_settings())


def scrape(client) -> dict[tuple[str, frozenset], float]:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(response.get_data(as_text=True))
            for s in family.samples}


def value(samples, name, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _iso(at: dt.datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def test_deliveries_and_duplicates_move_as_messages_arrive(client, db_session):
    before = scrape(client)
    first = message("presentment")
    webhook_id = new_webhook_id()
    assert deliver(client, first, webhook_id=webhook_id).status_code == 200
    assert deliver(client, first, webhook_id=webhook_id).status_code == 200   # FINCI retries
    assert deliver(client, message("card_status")).status_code == 200
    after = scrape(client)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    total = "finci_webhook_deliveries_total"
    assert moved(total, type="presentment", outcome="first") == 1
    assert moved(total, type="presentment", outcome="duplicate") == 1
    assert moved(total, type="card_status", outcome="first") == 1
    assert moved("finci_webhook_duplicates_total") == 1
    assert moved("finci_webhook_delivery_latency_seconds_count", type="presentment") == 1
    assert moved("finci_pipeline_backlog_messages") == 2


def test_delivery_latency_buckets_from_finci_created_at(client, db_session):
    now = utcnow()
    # 20 s late (the 30 s bucket), 200 s late (300 s), two hours late (+Inf).
    for seconds in (20, 200, 7200):
        body = message("refund", created_at=_iso(now - dt.timedelta(seconds=seconds)))
        assert deliver(client, body).status_code == 200
    samples = scrape(client)
    bucket = "finci_webhook_delivery_latency_seconds_bucket"
    assert value(samples, bucket, type="refund", le="10.0") == 0
    assert value(samples, bucket, type="refund", le="30.0") == 1
    assert value(samples, bucket, type="refund", le="60.0") == 1
    assert value(samples, bucket, type="refund", le="300.0") == 2
    assert value(samples, bucket, type="refund", le="3600.0") == 2
    assert value(samples, bucket, type="refund", le="+Inf") == 3
    total = value(samples, "finci_webhook_delivery_latency_seconds_sum", type="refund")
    assert total == pytest.approx(7420, abs=30)   # the time the three requests took


def _decision(session, *, total_ms, answer="success", reason="approved", default_used=False,
              at=None):
    at = at or utcnow()
    record = DecisionRecord(authorization_id=new_id("auth"), origin="request",
                            mode="integrator", token_id="tok_metrics", amount=100,
                            currency="EUR", finci_created_at=at, received_at=at, answer=answer,
                            reason=reason, detail="", default_used=default_used,
                            rule_trace=[], latency_ms={}, total_ms=total_ms)
    session.add(record)
    session.flush()
    return record


def test_decision_counts_duration_histogram_and_timeouts_match_hand_computed(client,
                                                                            db_session):
    for ms in (3.0, 40.0, 40.0, 1200.0):
        _decision(db_session, total_ms=ms)
    _decision(db_session, total_ms=2600.0, answer="error", reason="budget_exceeded",
              default_used=True)
    _decision(db_session, total_ms=3100.0, answer="error", reason="budget_exceeded",
              default_used=True)
    samples = scrape(client)
    decisions = "finci_auth_decisions_total"
    assert value(samples, decisions, decision="success", reason="approved") == 4
    assert value(samples, decisions, decision="error", reason="budget_exceeded") == 2
    bucket = "finci_auth_decision_duration_seconds_bucket"
    assert value(samples, bucket, le="0.005") == 1
    assert value(samples, bucket, le="0.05") == 3
    assert value(samples, bucket, le="1.5") == 4
    assert value(samples, bucket, le="2.5") == 4
    assert value(samples, bucket, le="3.0") == 5    # the bucket at FINCI's deadline
    assert value(samples, bucket, le="+Inf") == 6
    assert value(samples, "finci_auth_decision_duration_seconds_sum") == pytest.approx(6.983)
    assert value(samples, "finci_auth_timeouts_total", kind="safe_default") == 2
    assert value(samples, "finci_auth_timeouts_total", kind="late_answer") == 1


def test_folding_changes_no_figure_and_the_counters_survive_retention(client, db_session):
    for _ in range(3):
        assert deliver(client, message("presentment")).status_code == 200
    _decision(db_session, total_ms=12.5)
    unfolded = scrape(client)

    summary = folds.fold_job(db_session, None, utcnow() + 2 * folds.SETTLE)
    assert summary.startswith("deliveries ")
    positions = {f.source: f.through_id for f in db_session.scalars(select(MetricFold))}
    assert positions["deliveries"] > 0 and positions["decisions"] > 0
    assert scrape(client) == unfolded
    assert folds.fold_job(db_session, None, utcnow() + 2 * folds.SETTLE) == (
        "deliveries 0, messages 0, decisions 0")

    # Retention removes the rows; what they counted stays counted.
    db_session.execute(delete(WebhookDelivery))
    db_session.execute(delete(StoredMessage))
    db_session.execute(delete(DecisionRecord))
    db_session.flush()
    retained = scrape(client)
    for name in ("finci_webhook_deliveries_total", "finci_auth_decisions_total",
                 "finci_auth_decision_duration_seconds_sum",
                 "finci_webhook_delivery_latency_seconds_count"):
        assert {k: v for k, v in retained.items() if k[0] == name} == {
            k: v for k, v in unfolded.items() if k[0] == name}, name


def test_rows_younger_than_the_settling_time_are_counted_live_not_folded(client, db_session):
    assert deliver(client, message("presentment")).status_code == 200
    before = scrape(client)
    assert folds.fold_job(db_session, None, utcnow()).startswith("deliveries 0")
    assert scrape(client) == before


def test_posting_and_card_update_failures_are_counted_once_each(client, db_session):
    at = utcnow()
    event_counts.count_event(db_session, event_counts.POSTING_FAILURES,
                             {"reason": "unknown_card"}, at)
    event_counts.count_event(db_session, event_counts.POSTING_FAILURES,
                             {"reason": "unknown_card"}, at + dt.timedelta(hours=1))
    event_counts.count_event(db_session, event_counts.CARD_UPDATE_FAILURES,
                             {"kind": "timeout"}, at)
    db_session.flush()
    samples = scrape(client)
    assert value(samples, "finci_posting_failures_total", reason="unknown_card") == 2
    assert value(samples, "finci_card_update_failures_total", kind="timeout") == 1
    # One row a day per label set: a burst of failures is not a row each.
    assert db_session.scalar(select(MetricEventCount.count).where(
        MetricEventCount.metric == event_counts.POSTING_FAILURES)) in (1, 2)


def test_an_unknown_event_metric_is_refused(db_session):
    with pytest.raises(ValueError, match="not a counted event metric"):
        event_counts.count_event(db_session, "finci_made_up_total", {}, utcnow())


def test_a_sum_is_printed_rounded_so_its_digits_never_read_as_a_card_number(client,
                                                                            db_session):
    _decision(db_session, total_ms=1.2345678901234)
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    line = next(line for line in response.get_data(as_text=True).splitlines()
                if line.startswith("finci_auth_decision_duration_seconds_sum"))
    assert line.split()[-1] == "0.001"


def test_bucket_of_is_the_first_bound_holding_the_value():
    assert folds.bucket_of(0.0, (1.0, 2.0)) == "1.0"
    assert folds.bucket_of(1.0, (1.0, 2.0)) == "1.0"
    assert folds.bucket_of(1.5, (1.0, 2.0)) == "2.0"
    assert folds.bucket_of(9.0, (1.0, 2.0)) == "+Inf"


def test_the_tls_certificate_expiry_is_exported_in_whole_seconds(client, tmp_path, monkeypatch):
    from tests.keys.conftest import make_certificate

    not_after = (utcnow() + dt.timedelta(days=40)).replace(microsecond=0)
    cert = tmp_path / "cert.pem"
    make_certificate(cert, not_before=utcnow() - dt.timedelta(days=1), not_after=not_after)
    monkeypatch.setenv("TLS_CERT_FILE", str(cert))
    monkeypatch.setenv("TLS_KEY_FILE", str(cert))
    samples = scrape(client)
    assert value(samples, "finci_credential_expiry_timestamp_seconds",
                 credential="tls_certificate") == int(not_after.timestamp())


def test_without_a_certificate_served_here_no_tls_expiry_is_exported(client, monkeypatch):
    monkeypatch.delenv("TLS_CERT_FILE", raising=False)
    assert not any(name == "finci_credential_expiry_timestamp_seconds"
                   for name, _labels in scrape(client))


def test_inventory_credentials_in_use_export_their_expiry_and_retired_ones_do_not(
        client, db_session):
    from console.audit import Actor
    from console.deployment import record_environment, recorded_environment
    from console.keys import inventory

    environment = recorded_environment(db_session)
    if environment is None:  # the shared test database has none; rolled back after the test
        environment = "sandbox"
        record_environment(db_session, environment, Actor.cli("test"))
    expires = (utcnow() + dt.timedelta(days=20)).replace(microsecond=0)
    kept = inventory.create(db_session, Actor.cli("admin"), kind="finci_api_token",
                            name="FINCI API token", environment=environment,
                            fingerprint="ab" * 8, at=utcnow(), reason="CHG-1 initial token",
                            expires_at=expires, activate=True)
    gone = inventory.create(db_session, Actor.cli("admin"), kind="webhook_secret",
                            name="old", environment=environment, fingerprint="cd" * 8,
                            at=utcnow(), reason="CHG-1 old secret", expires_at=expires,
                            activate=True)
    inventory.revoke(db_session, Actor.cli("admin"), gone, at=utcnow(), reason="CHG-2 leaked",
                     environment=environment)
    db_session.flush()
    samples = scrape(client)
    name = "finci_credential_expiry_timestamp_seconds"
    assert value(samples, name, credential=f"{kept.kind}:{kept.name}") == int(expires.timestamp())
    assert (name, frozenset({("credential", "webhook_secret:old")})) not in samples
