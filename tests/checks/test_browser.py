"""Headless Chromium on the health page: "run now" updates the table, the table refreshes
itself while a snooze reason is typed without erasing it, and the snooze shows up."""

from __future__ import annotations

import pytest

from tests.auth.test_browser import _sign_in, backend, console, page  # noqa: F401 - fixtures

pytestmark = [pytest.mark.browser, pytest.mark.slow]

POLL_SECONDS = 1


@pytest.fixture
def console_extra_env():
    return {"CONSOLE_POLL_SECONDS": str(POLL_SECONDS)}


def test_oncall_runs_a_check_and_snoozes_another_while_the_table_refreshes(
        console, page, pan_scanner):  # noqa: F811 - the shared fixtures
    polls: list[str] = []
    page.on("request", lambda request: polls.append(request.url)
            if request.url.endswith("/health/panel") else None)
    _sign_in(page, console, "oncall")
    page.goto(f"{console.url}/health/")
    row = page.locator("tr[data-check='database']")
    row.get_by_test_id("run-now").click()
    page.locator("tr[data-check='database'][data-status='ok']").wait_for()
    assert "database: ok" in page.get_by_test_id("check-notice").inner_text()

    page.get_by_test_id("snooze-check").select_option("webhook_silence")
    reason = page.get_by_test_id("snooze-reason")
    text = "INC-5100 FINCI maintenance window"
    reason.press_sequentially(text, delay=(3 * POLL_SECONDS * 1000) // len(text))
    assert len(polls) >= 2, "the table did not refresh while typing"
    assert reason.input_value() == text
    page.get_by_test_id("snooze-submit").click()
    snoozed = page.locator("tr[data-check='webhook_silence']").get_by_test_id("snoozed")
    snoozed.wait_for()
    assert "snoozed until" in snoozed.inner_text()
    pan_scanner.scan(console.output(), "gunicorn")
