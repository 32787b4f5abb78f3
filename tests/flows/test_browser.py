"""Headless Chromium on the kill switches page: the state table refreshes itself while an
on-call engineer is slowly typing a reason, and neither the reason nor the auto-revert choice
is erased; the figures do change when the state changes elsewhere."""

from __future__ import annotations

import pytest

from console.audit import Actor
from console.db import Database, make_engine
from console.flows.services import Flow, set_flow
from tests.auth.test_browser import _sign_in, backend, console, page  # noqa: F401 - fixtures

pytestmark = [pytest.mark.browser, pytest.mark.slow]

POLL_SECONDS = 1


@pytest.fixture
def console_extra_env():
    return {"CONSOLE_POLL_SECONDS": str(POLL_SECONDS)}


def _polls(browser_page) -> list[str]:
    seen: list[str] = []
    browser_page.on("request", lambda request: seen.append(request.url)
            if request.url.endswith("/flows/panel") else None)
    return seen


def test_typing_a_reason_survives_the_refreshes_and_the_figures_still_update(
        console, page, pan_scanner):  # noqa: F811 - the shared fixtures
    _sign_in(page, console, "oncall")
    page.goto(f"{console.url}/flows/")
    polls = _polls(page)
    card = page.locator("section.switch[data-flow='card_actions']")
    card.get_by_test_id("flow-revert").select_option("60")
    reason = card.get_by_test_id("flow-reason")
    reason.click()
    text = "INC-4711 issuer outage, card API answering 503"
    # Slowly, across several refresh intervals.
    reason.press_sequentially(text, delay=(3 * POLL_SECONDS * 1000) // len(text))
    assert len(polls) >= 2, "the panel did not refresh while typing"
    assert reason.input_value() == text
    assert card.get_by_test_id("flow-revert").input_value() == "60"

    database = Database(make_engine(console.env["DATABASE_URL"]))
    try:
        with database.transaction() as session:
            set_flow(session, Actor.system("test"), Flow.DECISIONING, enabled=False,
                     reason="INC-4712 turned off elsewhere")
    finally:
        database.dispose()
    states = page.get_by_test_id("flow-states")
    row = states.locator("tr[data-flow='decisioning']")
    row.get_by_test_id("flow-state").filter(has_text="OFF").wait_for()
    assert "INC-4712 turned off elsewhere" in row.inner_text()
    assert reason.input_value() == text
    assert card.get_by_test_id("flow-revert").input_value() == "60"
    assert reason.evaluate("element => element === document.activeElement")
    pan_scanner.scan(console.output(), "gunicorn")
