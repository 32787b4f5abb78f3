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


def test_oncall_disables_decisioning_sees_the_banner_and_re_enables_it_viewer_only_looks(
        console, page, pan_scanner):  # noqa: F811 - the shared fixtures
    from tests.auth.test_browser import _sign_out

    page.on("dialog", lambda dialog: dialog.accept())  # "Turn decisioning OFF?" confirmation
    _sign_in(page, console, "oncall")
    page.goto(f"{console.url}/flows/")
    assert page.get_by_test_id("flows-off-banner").count() == 0
    switch = page.locator("section.switch[data-flow='decisioning']")
    switch.get_by_test_id("flow-reason").fill("INC-4800 rules misbehaving")
    switch.get_by_role("button", name="Turn off").click()
    row = page.get_by_test_id("flow-states").locator("tr[data-flow='decisioning']")
    row.get_by_test_id("flow-state").filter(has_text="OFF").wait_for()

    page.goto(f"{console.url}/pipeline/deliveries")
    banner = page.get_by_test_id("flows-off-banner")
    assert "Decisioning" in banner.inner_text()
    assert "INC-4800 rules misbehaving" in banner.inner_text()
    assert "by oncall" in banner.inner_text()
    banner.get_by_role("link", name="Kill switches").click()
    page.wait_for_url(f"{console.url}/flows/")

    switch = page.locator("section.switch[data-flow='decisioning']")
    switch.get_by_test_id("flow-reason").fill("INC-4800 fixed")
    switch.get_by_role("button", name="Turn on").click()
    row = page.get_by_test_id("flow-states").locator("tr[data-flow='decisioning']")
    row.get_by_test_id("flow-state").filter(has_text="ON").wait_for()
    page.goto(f"{console.url}/pipeline/deliveries")
    assert page.get_by_test_id("flows-off-banner").count() == 0

    _sign_out(page, console)
    _sign_in(page, console, "viewer")
    page.goto(f"{console.url}/flows/")
    row = page.get_by_test_id("flow-states").locator("tr[data-flow='decisioning']")
    assert row.get_by_test_id("flow-state").inner_text() == "ON"
    assert "INC-4800 fixed" in row.inner_text()
    assert page.locator("section.switch").count() == 0
    assert page.locator("form[action^='/flows/']").count() == 0
    pan_scanner.scan(console.output(), "gunicorn")
