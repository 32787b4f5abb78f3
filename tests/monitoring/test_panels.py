import datetime as dt

from console.monitoring.panels import delivery_latency, job_health, overview


def test_a_fresh_system_needs_no_attention_except_jobs_that_never_ran(db_session):
    view = overview(db_session, "sandbox")
    assert view.decisions.requests == 0 and view.posting_failures == 0
    assert all(note.startswith("scheduled job") for note in view.attention)


def test_jobs_are_stale_until_they_run(db_session):
    now = dt.datetime(2026, 11, 27, 12, tzinfo=dt.UTC)
    assert all(job.stale for job in job_health(db_session, now))


def test_delivery_latency_of_an_empty_window_is_unknown(db_session):
    latency = delivery_latency(db_session, dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    assert (latency.samples, latency.p50_ms, latency.p99_ms) == (0, None, None)
