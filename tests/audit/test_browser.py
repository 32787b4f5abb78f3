"""Headless Chromium as a compliance reviewer: searches the audit log for a ticket number,
opens the before/after diff of a rule change, downloads the public key, the one-file verifier
and signed CSV and JSONL exports (streamed, with progress), and both verify with that file
in a bare interpreter.

The browser talks to the app in this process (every request to ``https://localhost`` is
answered by the Flask test client of the signed-in reviewer, as in the card-data browser test),
so the real pages, htmx, the scripts and the CSP run.
"""

from __future__ import annotations

import zipfile

import pytest

from console.audit import Actor, AuditAction, Target, record
from tests.audit.conftest import keyed_settings
from tests.audit.test_standalone import run_bare
from tests.auth.test_browser import CHROMIUM_ARGS

pytestmark = [pytest.mark.browser]

settings = pytest.fixture(keyed_settings, name="settings")


@pytest.fixture
def backend(request):
    return "sqlite"


RULES_BEFORE = {"rules": [{"name": f"rule-{i}", "limit": 100 * i} for i in range(20)]}
RULES_AFTER = {"rules": [{"name": f"rule-{i}", "limit": 100 * i if i != 7 else 4_200}
                         for i in range(20)]}


class Served:
    """Answers the browser from the test client; keeps what was sent as an attachment (a
    download fulfilled through a route is cancelled by Chromium, so the test takes the bytes
    the browser was given)."""

    def __init__(self, client):
        self.client = client
        self.attachments: dict[str, bytes] = {}

    def __call__(self, route):
        request = route.request
        path = request.url.removeprefix("https://localhost")
        response = self.client.open(path, method=request.method, data=request.post_data_buffer,
                                    headers={k: v for k, v in request.headers.items()
                                             if k.lower() not in ("host", "content-length")})
        response.direct_passthrough = False
        body = response.get_data()
        response.close()
        disposition = response.headers.get("Content-Disposition", "")
        if disposition.startswith("attachment"):
            self.attachments[disposition.split("filename=")[-1].strip('"')] = body
        route.fulfill(status=response.status_code, body=body,
                      headers={k: v for k, v in response.headers.items()
                               if k.lower() != "content-length"})

    def wait_for(self, page, suffix: str) -> tuple[str, bytes]:
        for _ in range(100):
            for name, body in self.attachments.items():
                if name.endswith(suffix):
                    return name, body
            page.wait_for_timeout(100)
        raise AssertionError(f"no {suffix} download; got {list(self.attachments)}")


def _seed(session):
    for n in range(30):
        record(session, actor=Actor.cli(f"user{n}"), action=AuditAction.AUDIT_LOG_VIEW,
               details={"n": n})
    record(session, actor=Actor.cli("anna"), action=AuditAction.DECISIONING_RULES_UPDATE,
           target=Target("rule_set", "7"), before=RULES_BEFORE, after=RULES_AFTER,
           details={"reason": "INC-5150 raise the ATM cap for the festival"})
    session.commit()


def test_a_compliance_reviewer_finds_a_change_reads_its_diff_and_exports_it(
        app, sign_in, db_session, tmp_path, pan_scanner):
    from playwright.sync_api import sync_playwright

    _seed(db_session)
    client = sign_in(app.test_client(), "compliance")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                             args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(ignore_https_errors=True, accept_downloads=True)
            context.set_default_timeout(15_000)
            served = Served(client)
            context.route("https://localhost/**", served)
            page = context.new_page()
            page.goto("https://localhost/audit/")

            search = page.get_by_label("Search")
            search.press_sequentially("INC-5150", delay=40)  # a tired reviewer typing
            search.press("Enter")
            rows = page.locator("#audit-rows tbody tr")
            change = rows.filter(has_text="decisioning.rules.update")
            change.wait_for()
            # The change, and the reviewer's own searches (each view of the log is audited).
            assert change.count() == 1 and "INC-5150" in change.inner_text()
            assert all(a in ("decisioning.rules.update", "audit.log.view")
                       for a in rows.locator("td:nth-child(4)").all_inner_texts())

            diff = change.get_by_test_id("audit-diff")
            diff.locator("summary").click()
            added = diff.locator(".diff__added")
            added.first.wait_for()
            assert "4200" in added.first.inner_text()
            assert "700" in diff.locator(".diff__removed").first.inner_text()

            # Chromium fetches an <a download> outside the page's routes: follow its href.
            href = page.get_by_role("link", name="download the public key").get_attribute("href")
            key_response = client.get(href)
            assert key_response.status_code == 200
            key_path = tmp_path / "audit-export.pub.pem"
            key_path.write_bytes(key_response.data)
            assert key_response.data.startswith(b"-----BEGIN PUBLIC KEY-----")

            href = page.get_by_role("link", name="download the one-file verifier") \
                .get_attribute("href")
            verifier = client.get(href)
            assert verifier.status_code == 200
            verifier_path = tmp_path / "verify_audit_export.py"
            verifier_path.write_bytes(verifier.data)

            page.locator("#audit-export input[name=since]").fill("")
            export_paths = {}
            for events_format in ("csv", "jsonl"):
                served.attachments.clear()
                page.locator("#audit-export select[name=format]").select_option(events_format)
                page.get_by_role("button", name="Download signed export").click()
                name, bundle = served.wait_for(page, ".zip")
                # The streamed download's progress, shown by static/js/audit-export.js.
                page.locator("[data-export-progress][data-export-done]").wait_for()
                assert "(100%)" in page.locator("[data-export-progress]").inner_text()
                page.evaluate("document.querySelector('[data-export-progress]')"
                              ".removeAttribute('data-export-done')")
                export_paths[events_format] = tmp_path / f"{events_format}-{name}"
                export_paths[events_format].write_bytes(bundle)
            pan_scanner.scan(page.content(), "browser:audit")
        finally:
            browser.close()

    # What the auditor runs: the one-file verifier, with only Python and cryptography.
    assert "events.csv" in zipfile.ZipFile(export_paths["csv"]).namelist()
    for export_path in export_paths.values():
        verified = run_bare(verifier_path, export_path, "--public-key", key_path, cwd=tmp_path)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert "verified" in verified.stdout.lower() or "ok" in verified.stdout.lower()
