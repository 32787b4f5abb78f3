import datetime as dt
import time

from console.db import utcnow
from console.finci.payload import parse_message
from console.ingress import services as ingress
from console.ingress.verify import Source
from console.monitoring import targets
from console.monitoring.panels import delivery_latency, job_health, overview
from tests.ingress.helpers import IDENTITY_KEY, encode, ingress_settings, message, new_webhook_id


def test_a_fresh_system_needs_no_attention_except_jobs_that_never_ran(db_session):
    view = overview(db_session, "sandbox")
    assert view.decisions.requests == 0 and view.posting_failures == 0
    assert all(note.text.startswith("scheduled job") for note in view.attention)


def test_jobs_are_stale_until_they_run(db_session):
    now = dt.datetime(2026, 11, 27, 12, tzinfo=dt.UTC)
    assert all(job.stale for job in job_health(db_session, now))


def test_delivery_latency_of_an_empty_window_is_unknown(db_session):
    latency = delivery_latency(db_session, dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    assert (latency.samples, latency.p50_ms, latency.p99_ms) == (0, None, None)


def _stored_late(test_database, seconds: float) -> None:
    """A message that reached us ``seconds`` after FINCI created it."""
    now = utcnow()
    body = message("presentment", created_at=(now - dt.timedelta(seconds=seconds))
                   .isoformat().replace("+00:00", "Z"))
    raw = encode(body)
    delivery = ingress.Delivery(
        webhook_id=new_webhook_id(), webhook_timestamp=int(time.time()), body=raw,
        verified_by="test", source=Source("127.0.0.1", "127.0.0.1", False), headers={},
        received_at=now)
    ingress.store(test_database, delivery, parse_message(raw), ingress_settings(),
                  identity_key=IDENTITY_KEY)


def test_a_slow_delivery_p99_is_flagged_and_its_attention_item_links_the_deliveries(
        as_viewer, db_session, test_database):
    _stored_late(test_database, 32)
    view = overview(db_session, "sandbox")
    assert view.delivery_latency.p99_ms > targets.DELIVERY_LATENCY_P99_MS
    assert view.delivery_latency_breached
    body = as_viewer.get("/overview/panels", headers={"HX-Request": "true"}).get_data(
        as_text=True)
    assert 'data-testid="flagged"' in body and "above 5 s target" in body
    assert ('<a href="/pipeline/deliveries" data-testid="attention-item">webhook delivery '
            "latency p99 32.0 s is above the 5 s target</a>") in body


def test_every_attention_item_is_a_link(as_viewer):
    body = as_viewer.get("/overview/panels", headers={"HX-Request": "true"}).get_data(
        as_text=True)
    assert 'href="/#scheduled-jobs" data-testid="attention-item">scheduled job' in body
    assert 'id="scheduled-jobs"' in body


def test_figures_within_their_target_are_not_flagged(db_session, test_database):
    _stored_late(test_database, 1)
    assert not overview(db_session, "sandbox").delivery_latency_breached
    assert not overview(db_session, "sandbox").authorization_latency_breached
