"""Headless Chromium on the Overview: a change made elsewhere appears in "What changed" beside
the panels without a reload, and its link opens the object's page."""

from __future__ import annotations

import pytest

from console.audit import Actor
from console.db import Database, make_engine
from console.flows.services import Flow, set_flow
from tests.auth.test_browser import _sign_in, backend, console, page  # noqa: F401 - fixtures

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def console_extra_env():
    return {"CONSOLE_POLL_SECONDS": "1"}


def test_a_switch_change_appears_beside_the_panels_and_links_the_flows_page(
        console, page, pan_scanner, tmp_path):  # noqa: F811 - the shared fixtures
    _sign_in(page, console, "viewer")
    recent = page.locator("#recent-changes")
    recent.wait_for()
    assert page.locator("#overview-panels").is_visible()
    database = Database(make_engine(console.env["DATABASE_URL"]))
    try:
        with database.transaction() as session:
            set_flow(session, Actor.system("test"), Flow.CARD_ACTIONS, enabled=False,
                     reason="INC-4713 card API answering 503")
    finally:
        database.dispose()
    item = recent.locator("[data-kind='flow']").first
    item.filter(has_text="Turned card actions off: INC-4713").wait_for(timeout=5_000)
    assert item.get_by_test_id("change-audit").count() == 0  # a viewer gets no audit link
    page.screenshot(path=str(tmp_path / "overview.png"), full_page=True)
    item.get_by_test_id("change-object").click()
    page.wait_for_url(f"{console.url}/flows/")
    pan_scanner.scan(console.output(), "gunicorn")
