"""The Overview's traffic panels per window: hand-computed figures from seeded data, the same
before and after folding, and the window choice validated."""

from __future__ import annotations

import datetime as dt

import pytest

from console.db import utcnow
from console.monitoring import folds
from console.monitoring.windows import Estimate, PanelWindow, quantile, traffic
from tests.ingress.helpers import deliver, ingress_settings, message
from tests.monitoring.test_metric_totals import _decision


@pytest.fixture
def settings(db_factory):
    from tests.conftest import make_settings

    return make_settings(db_factory.shared_url, ingress=ingress_settings())


INF = float("inf")


def test_quantile_interpolates_within_the_bucket_like_prometheus():
    cumulative = [(1.0, 0), (2.0, 10), (4.0, 20), (INF, 20)]
    assert quantile(0.5, cumulative) == Estimate(2.0)
    assert quantile(0.25, cumulative) == Estimate(1.5)
    assert quantile(0.75, cumulative) == Estimate(3.0)
    assert quantile(0.99, [(1.0, 5), (INF, 10)]) == Estimate(1.0, over=True)
    assert quantile(0.5, [(1.0, 0), (INF, 0)]) == Estimate(None)
    assert quantile(0.5, [(1.0, 4), (INF, 4)]) == Estimate(0.5)


def _seed(session, now):
    # Inside 15 minutes: three answers (one a near miss at 2.5 s), one safe default.
    for ms in (20.0, 30.0, 2500.0):
        _decision(session, total_ms=ms, at=now - dt.timedelta(minutes=1))
    _decision(session, total_ms=1600.0, answer="error", reason="budget_exceeded",
              default_used=True, at=now - dt.timedelta(minutes=1))
    # Three hours ago and two days ago.
    _decision(session, total_ms=40.0, answer="error", reason="insufficient_funds",
              at=now - dt.timedelta(hours=3))
    _decision(session, total_ms=3200.0, at=now - dt.timedelta(days=2))


def _figures(view):
    return (view.decisions, view.approved, view.declined, view.near_misses, view.late_answers,
            view.safe_defaults, sorted((r.decision, r.reason, r.count) for r in view.reasons))


def test_each_window_counts_what_fell_in_it_folded_or_not(db_session):
    now = utcnow().replace(second=30) + dt.timedelta(days=30)  # nothing else is this new
    _seed(db_session, now)
    expected = {
        PanelWindow.QUARTER: (4, 3, 1, 1, 0, 1,
                              [("success", "approved", 3), ("error", "budget_exceeded", 1)]),
        PanelWindow.HOUR: (4, 3, 1, 1, 0, 1,
                           [("success", "approved", 3), ("error", "budget_exceeded", 1)]),
        PanelWindow.DAY: (5, 3, 2, 1, 0, 1,
                          [("success", "approved", 3), ("error", "budget_exceeded", 1),
                           ("error", "insufficient_funds", 1)]),
        PanelWindow.WEEK: (6, 4, 2, 2, 1, 1,
                           [("success", "approved", 4), ("error", "budget_exceeded", 1),
                            ("error", "insufficient_funds", 1)]),
    }
    live = {window: _figures(traffic(db_session, window, now)) for window in PanelWindow}
    for window, figures in expected.items():
        decisions, approved, declined, near, late, defaults, reasons = figures
        got = live[window]
        assert got[:6] == (decisions, approved, declined, near, late, defaults), window
        assert sorted(got[6]) == sorted(reasons), window

    folds.fold_job(db_session, None, now + 2 * folds.SETTLE)
    assert {window: _figures(traffic(db_session, window, now)) for window in PanelWindow} == live

    view = traffic(db_session, PanelWindow.QUARTER, now)
    # 20 ms and 30 ms in (25, 50] ms, 1.6 s in (1.5, 2], 2.5 s in (2.4, 2.5]: the median is the
    # second of four, inside (25, 50] ms.
    assert 0.025 < view.decision_p50.value <= 0.05
    assert view.timeout_rate == pytest.approx(1 / 4)
    assert sum(bar.value for bar in view.decision_chart) == 4


def test_the_delivery_panel_counts_duplicates_and_latency_by_type(client, db_session):
    body = message("reversal", created_at=(utcnow() - dt.timedelta(seconds=20))
                   .isoformat().replace("+00:00", "Z"))
    assert deliver(client, body, webhook_id="msg_windowtest").status_code == 200
    assert deliver(client, body, webhook_id="msg_windowtest").status_code == 200
    view = traffic(db_session, PanelWindow.QUARTER, utcnow())
    assert view.duplicates >= 1 and view.by_outcome["duplicate"] >= 1
    [row] = [row for row in view.latency if row.type == "reversal"]
    assert row.count >= 1 and 10 < row.p50.value <= 30


def test_the_overview_shows_the_chosen_window_and_links_each_figure(as_viewer, db_session):
    now = utcnow()
    _decision(db_session, total_ms=25.0, at=now)
    page = as_viewer.get("/?window=7d")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert 'data-window="7d"' in body and "Traffic, last 7 days" in body
    assert 'hx-get="/overview/panels?window=7d"' in body
    assert "/pipeline/deliveries?since=" in body and "disposition=duplicate" in body
    assert "/decisions/?answer=success&amp;reason=approved" in body
    fragment = as_viewer.get("/overview/panels?window=15m", headers={"HX-Request": "true"})
    assert 'data-window="15m"' in fragment.get_data(as_text=True)


@pytest.mark.parametrize("raw", ["1y", "15M", "%00", "7d;drop", "x" * 500])
def test_an_unknown_window_is_a_clear_400(as_viewer, raw):
    for path in ("/", "/overview/panels"):
        response = as_viewer.get(path, query_string={"window": raw})
        assert response.status_code == 400
        assert "window must be one of: 15m, 1h, 24h, 7d" in response.get_data(as_text=True)


def test_fast_deliveries_get_a_median_in_milliseconds_not_within_one_100_ms_bucket():
    from console.monitoring.windows import _cumulative

    # Ten deliveries of about 6 ms each, as the demo delivers them.
    counts = {folds.bucket_of(0.006, folds.DELIVERY_LATENCY_BUCKETS): 10.0}
    median = quantile(0.5, _cumulative(folds.DELIVERY_LATENCY_BUCKETS, counts))
    assert 0.005 < median.value <= 0.01
