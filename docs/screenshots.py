"""Take the README's screenshots from a running demo (`make demo` in another terminal).

    .venv/bin/python docs/screenshots.py [--url https://localhost:8443]

Signs in through the local identity provider as each persona it needs, in Debian's headless
Chromium (never a downloaded browser), and writes docs/screenshots/*.png.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from playwright.sync_api import sync_playwright

OUT = Path(__file__).resolve().parent / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--ignore-certificate-errors"]
# (persona, path, file name)
SHOTS = [
    ("operator", "/", "overview"),
    ("operator", "/pipeline/deliveries", "deliveries"),
    ("operator", "/pipeline/duplicates", "duplicates"),
    ("operator", "/decisions/", "decisions"),
    ("oncall", "/flows/", "kill-switches"),
    ("operator", "/transactions/", "transactions"),
    ("compliance", "/audit/", "audit-log"),
    ("admin", "/keys/", "credentials-and-keys"),
]


def sign_in(page, url: str, persona: str) -> None:
    page.goto(f"{url}/auth/login")
    page.get_by_test_id("sign-in-sso").click()
    page.get_by_role("button", name=f"Sign in as {persona}").click()
    page.wait_for_url(f"{url}/**")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="https://localhost:8443")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                             args=CHROMIUM_ARGS)
        contexts = {}
        for persona, path, name in SHOTS:
            if persona not in contexts:
                context = browser.new_context(viewport={"width": 1360, "height": 860},
                                              ignore_https_errors=True)
                sign_in(context.new_page(), args.url, persona)
                contexts[persona] = context
            page = contexts[persona].new_page()
            response = page.goto(args.url + path)
            if response is None or response.status >= 400:
                print(f"skipped {name}: {path} answered {response.status if response else '-'}")
                continue
            page.wait_for_timeout(500)
            page.screenshot(path=str(OUT / f"{name}.png"))
            print(f"wrote {OUT / (name + '.png')}")
        browser.close()


if __name__ == "__main__":
    main()
