"""Headless Chromium signs in to the console served by gunicorn over HTTPS, through the real
local OIDC provider, as two personas, and sees different navigation."""

from __future__ import annotations

import pytest

from console.audit import Actor
from console.db import Database, make_engine
from console.deployment import record_environment
from tests.auth.conftest import CLIENT_ID, CLIENT_SECRET
from tests.support.oidc_provider import OidcProvider
from tests.support.servers import Gunicorn, console_env

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--ignore-certificate-errors"]


@pytest.fixture
def backend(request):
    return "sqlite"  # one real-process journey is enough; both backends run everywhere else


@pytest.fixture
def console_extra_env() -> dict[str, str]:
    """More environment for the console under test; a module overrides it (faster polling)."""
    return {}


@pytest.fixture
def console(db_factory, tmp_path, console_extra_env):
    url = db_factory.fresh()
    database = Database(make_engine(url))
    with database.transaction() as session:
        record_environment(session, "sandbox", Actor.cli("test"))
    database.dispose()
    server = Gunicorn(console_env(url, **console_extra_env), tls_dir=tmp_path, workers=1, threads=4)
    with OidcProvider(CLIENT_ID, CLIENT_SECRET, [f"{server.url}/auth/callback"],
                      [f"{server.url}/auth/signed-out"]) as idp:
        server.env.update({"OIDC_ISSUER": idp.issuer, "OIDC_CLIENT_ID": CLIENT_ID,
                           "OIDC_CLIENT_SECRET": CLIENT_SECRET})
        with server:
            yield server


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                             args=CHROMIUM_ARGS)
        context = browser.new_context(ignore_https_errors=True)
        context.set_default_timeout(15_000)
        yield context.new_page()
        context.close()
        browser.close()


def _sign_in(page, console, persona: str) -> None:
    page.goto(f"{console.url}/")
    assert page.url.startswith(f"{console.url}/auth/login")
    page.get_by_test_id("sign-in-sso").click()
    page.get_by_role("button", name=f"Sign in as {persona}", exact=True).click()
    page.wait_for_url(f"{console.url}/")


def _nav(page) -> list[str]:
    return page.locator("nav.nav a").all_inner_texts()


def _sign_out(page, console) -> None:
    page.get_by_test_id("sign-out").click()
    page.get_by_role("button", name="Yes, sign me out").click()
    page.wait_for_url(f"{console.url}/auth/signed-out*")
    assert "You are signed out" in page.content()


def test_two_personas_sign_in_through_the_provider_and_see_their_own_navigation(
        console, page, pan_scanner):
    _sign_in(page, console, "operator")
    assert page.get_by_test_id("user-roles").inner_text() == "operator"
    operator_nav = _nav(page)
    assert "Users" not in operator_nav and "Audit log" not in operator_nav
    [cookie] = [c for c in page.context.cookies() if c["name"] == "__Host-console"]
    assert (cookie["secure"], cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == \
        (True, True, "Lax", "/")
    _sign_out(page, console)

    _sign_in(page, console, "admin")
    assert page.get_by_test_id("user-roles").inner_text() == "admin"
    admin_nav = _nav(page)
    assert {"Users", "Audit log"} <= set(admin_nav)
    assert admin_nav != operator_nav

    # The users page's htmx disable action works in a real browser (CSRF header from <body>).
    page.get_by_role("link", name="Users").click()
    row = page.locator("tr", has_text="Operator")
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_test_id("disable-user").click()
    page.locator("tr", has_text="Operator").get_by_text("disabled").wait_for()
    _sign_out(page, console)
    pan_scanner.scan(console.output(), "gunicorn")
