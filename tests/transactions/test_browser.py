"""Headless Chromium, signed in through the real provider to the console under gunicorn, finds a
transaction by its authorization id and reads its timeline: authorization, advice, a partial
presentment, a reversal and a duplicate delivery, all there and in order."""

from __future__ import annotations

import re

import pytest

from console.cards.services import issue_funded_card
from console.db import Database, make_engine
from tests.auth.test_browser import (  # noqa: F401 - fixtures
    _sign_in,
    backend,
    console,
    console_extra_env,
    page,
)
from tests.transactions.support import Bodies, Driver, new_id

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def story(console):  # noqa: F811 - the shared fixture
    """The messages, stored by the real ingress and processed by the real worker, in the
    database the gunicorn console serves."""
    database = Database(make_engine(console.env["DATABASE_URL"]))
    session = database.session()
    try:
        token = new_id("tok")
        issue_funded_card(session, token_id=token, balance=50_000)
        session.commit()
        bodies = Bodies(token, merchant="Hotel Aurora")
        presentment = bodies.presentment("auth_browser", 7_250, id_="pres_browser")
        driver = Driver(database, session)
        driver.run(bodies.request("auth_browser", 12_000), bodies.advice("auth_browser", 12_000),
                   presentment, bodies.reversal("auth_browser", 4_750, id_="rev_browser"))
        driver.deliver(presentment)  # FINCI retries the presentment
        driver.process()
        yield "auth_browser"
    finally:
        session.close()
        database.dispose()


def test_an_operator_reads_a_transactions_timeline_in_order(
        console, page, story, pan_scanner):  # noqa: F811 - the shared fixtures
    _sign_in(page, console, "operator")
    page.get_by_role("link", name="Transactions", exact=True).click()
    page.get_by_test_id("search-q").fill(story)
    page.get_by_role("button", name="Search").click()
    # One transaction matches: the search opens its timeline (HX-Redirect).
    page.wait_for_url(re.compile(r".*/transactions/[0-9]+$"))

    assert page.get_by_test_id("transaction-state").inner_text() == "posted"
    page.get_by_test_id("time-axis").wait_for()
    rows = page.get_by_test_id("timeline-event")
    kinds = [rows.nth(i).get_attribute("data-kind") for i in range(rows.count())]
    titles = rows.locator("td:nth-child(5) strong").all_inner_texts()

    def position(title: str) -> int:
        matches = [i for i, text in enumerate(titles) if text == title]
        assert matches, f"{title!r} not on the timeline: {titles}"
        return matches[0]

    steps = ["Authorization request", "Our decision: approve", "Authorization advice",
             "Presentment", "Posted: presentment", "Reversal",
             "Presentment: duplicate delivery"]
    assert [position(step) for step in steps] == sorted(position(step) for step in steps)
    assert kinds.count("presentment.delivery") == 2  # the first and the duplicate
    page.get_by_test_id("rule-trace").wait_for()
    text = page.get_by_test_id("timeline-events").inner_text()
    assert "72.50 EUR" in text and "47.50 EUR" in text
    pan_scanner.scan(page.content(), "browser")
    pan_scanner.scan(console.output(), "gunicorn")
