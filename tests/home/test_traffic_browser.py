"""Headless Chromium on the Overview: the traffic panel counts webhooks as they arrive at the
real ingress (gunicorn), without a reload, and the page is captured for the README."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
import requests

from console.finci.webhook_signature import WebhookSecret
from tests.auth.test_browser import _sign_in, backend, console, page  # noqa: F401 - fixtures
from tests.ingress.helpers import message, signed

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SECRET = WebhookSecret.generate()
# Set CONSOLE_SCREENSHOT_DIR to keep the capture (docs/screenshots for the README).
SCREENSHOT_DIR = os.environ.get("CONSOLE_SCREENSHOT_DIR")


@pytest.fixture
def console_extra_env():
    return {"CONSOLE_POLL_SECONDS": "1", "FINCI_WEBHOOK_SECRETS": SECRET.export()}


def _deliver(server, body) -> None:
    raw, headers = signed(body, secret=SECRET)
    response = requests.post(f"{server.url}/webhooks/finci", data=raw, headers=headers,
                             verify=str(server.cert_path), timeout=10)
    assert response.status_code == 200, response.text


def test_the_traffic_panel_counts_deliveries_as_they_arrive(
        console, page, tmp_path, pan_scanner):  # noqa: F811 - the shared fixtures
    _sign_in(page, console, "viewer")
    page.goto(f"{console.url}/?window=15m")
    deliveries = page.get_by_test_id("traffic-deliveries")
    assert deliveries.inner_text() == "0"
    assert "No webhook deliveries in this window" in page.content()

    created = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
    for type_ in ("presentment", "refund", "card_status"):
        _deliver(console, message(type_, created_at=created))
    # No reload: the polled fragment brings the new figures.
    page.wait_for_function(
        "() => document.querySelector('[data-testid=traffic-deliveries]').textContent === '3'",
        timeout=10_000)
    assert page.get_by_test_id("delivery-latency").locator("tbody tr").count() == 3
    assert page.locator("[data-testid=traffic] svg.spark rect").count() >= 3
    # Just sent: every figure of the latency table is in its first buckets, none flagged.
    assert page.get_by_test_id("delivery-latency").get_by_test_id("flagged").count() == 0

    out = Path(SCREENSHOT_DIR) if SCREENSHOT_DIR else tmp_path
    page.screenshot(path=str(out / "overview.png"), full_page=True)
    assert (out / "overview.png").stat().st_size > 10_000
    pan_scanner.scan(console.output(), "gunicorn")
