"""Headless Chromium on the overview under the console's real CSP: the live panel polls while
the tab is visible, stops while it is hidden, catches up when shown again, and nothing needs
eval (htmx trigger filters would raise htmx:evalDisallowedError and then poll regardless)."""

from __future__ import annotations

import time

import pytest

from tests.auth.test_browser import _sign_in, backend, console, page  # noqa: F401 - fixtures

pytestmark = [pytest.mark.browser, pytest.mark.slow]

POLL_SECONDS = 1
PANELS = "/overview/panels"

# Chromium offers no switch for "this tab is in the background"; the page sees exactly what a
# hidden tab shows it: document.visibilityState and a visibilitychange event.
SET_VISIBILITY = """state => {
    Object.defineProperty(document, "visibilityState", {configurable: true, get: () => state});
    Object.defineProperty(document, "hidden", {configurable: true, get: () => state !== "visible"});
    document.dispatchEvent(new Event("visibilitychange"));
}"""


@pytest.fixture
def console_extra_env():
    return {"CONSOLE_POLL_SECONDS": str(POLL_SECONDS)}


def test_the_overview_polls_only_while_visible_without_eval(
        console, page, pan_scanner):  # noqa: F811 - the shared fixtures
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text)
            if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    polls: list[float] = []
    page.on("request", lambda request: polls.append(time.monotonic())
            if request.url.endswith(PANELS) else None)
    _sign_in(page, console, "viewer")
    assert page.url == f"{console.url}/"
    page.wait_for_timeout(2_500 * POLL_SECONDS)
    assert len(polls) >= 2, "the visible overview did not refresh"

    page.evaluate(SET_VISIBILITY, "hidden")
    page.wait_for_timeout(500)  # a request already under way may finish
    hidden_from = len(polls)
    page.wait_for_timeout(3_500 * POLL_SECONDS)
    assert len(polls) == hidden_from, "a hidden tab kept polling"

    with page.expect_request(lambda request: request.url.endswith(PANELS), timeout=900):
        page.evaluate(SET_VISIBILITY, "visible")  # refreshed at once, not at the next tick
    page.wait_for_timeout(2_500 * POLL_SECONDS)
    assert len(polls) >= hidden_from + 3

    # The only failed resource is /favicon.ico (there is none); no script error of any kind.
    assert [e for e in errors if not e.startswith("Failed to load resource")] == []
    pan_scanner.scan(console.output(), "gunicorn")
