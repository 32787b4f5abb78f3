"""Headless Chromium on the card page: a revealed number disappears after 30 seconds.

The browser talks to the app in this process: every request to ``https://localhost`` is answered
by the Flask test client of a signed-in person who may reveal (``page.route``), so the real page,
htmx, static/js/reveal.js and the real CSP run, and Playwright's clock stands in for 30 s of
waiting. (A real-process journey needs a configured secret store in the console process.)
"""

from __future__ import annotations

import pytest

from tests.auth.test_browser import CHROMIUM_ARGS
from tests.conftest import REVEAL_TEST_PAN
from tests.keys.card_data.conftest import add_card, allow_reveal, new_key

pytestmark = [pytest.mark.browser]


@pytest.fixture
def backend(request):
    return "sqlite"


def _serve(client):
    def handle(route):
        request = route.request
        path = request.url.removeprefix("https://localhost")
        response = client.open(path, method=request.method, data=request.post_data_buffer,
                               headers={k: v for k, v in request.headers.items()
                                        if k.lower() not in ("host", "content-length")})
        response.direct_passthrough = False  # static files: read them whole, then close
        body = response.get_data()
        response.close()
        route.fulfill(status=response.status_code, body=body,
                      headers={k: v for k, v in response.headers.items()
                               if k.lower() != "content-length"})
    return handle


def test_a_revealed_number_is_hidden_again_after_30_seconds(app, sign_in, db_session, store):
    from playwright.sync_api import sync_playwright

    card = add_card(db_session, new_key(db_session, store))
    db_session.commit()
    client = allow_reveal(db_session, sign_in(app.test_client(), "operator"))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                             args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(ignore_https_errors=True)
            context.set_default_timeout(15_000)
            context.route("https://localhost/**", _serve(client))
            page = context.new_page()
            page.clock.install()
            page.goto(f"https://localhost/cards/{card.token_id}")
            assert REVEAL_TEST_PAN not in page.content()
            page.get_by_test_id("card-data").locator("input[name=reason]").fill(
                "cardholder dispute, ticket 4711")
            page.get_by_role("button", name="Reveal full number").click()
            shown = page.get_by_test_id("revealed-number")
            shown.wait_for()
            assert REVEAL_TEST_PAN in shown.inner_text()
            page.clock.run_for(29_000)
            assert REVEAL_TEST_PAN in shown.inner_text()
            page.clock.run_for(2_000)
            page.get_by_test_id("reveal-expired").wait_for()
            assert REVEAL_TEST_PAN not in page.content()
            assert "hidden again" in page.get_by_test_id("reveal-expired").inner_text()
        finally:
            browser.close()
