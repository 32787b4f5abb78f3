"""Run the local OpenID Connect provider (``idp/server.js``) from tests.

The provider is the real, OpenID Certified ``oidc-provider`` npm package with a one-click
persona login page (see ``idp/README.md``).  This module starts it on a free loopback port,
and drives its HTML forms with a ``requests.Session`` so tests can sign in without a browser.

    with OidcProvider("console", "secret", ["http://127.0.0.1:5000/auth/callback"]) as idp:
        idp.issuer          # "http://127.0.0.1:PORT"
        idp.metadata        # the discovery document
        location = complete_login(session, authorize_url, "operator")
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
IDP_DIR = REPO_ROOT / "idp"
SERVER_JS = IDP_DIR / "server.js"

PERSONAS = ("viewer", "operator", "oncall", "compliance", "admin", "outsider", "multi")

_STARTUP_TIMEOUT = 20.0
_NPM_TIMEOUT = 600.0


class IdpError(RuntimeError):
    """The local identity provider could not be installed, started or driven."""


# ----------------------------------------------------------------------------- install


def ensure_idp_installed() -> Path:
    """Install ``idp/node_modules`` with ``npm ci`` when missing; return the idp directory.

    Idempotent and safe to call from parallel test processes (serialised by a file lock).
    """
    marker = IDP_DIR / "node_modules" / "oidc-provider" / "package.json"
    if marker.exists():
        return IDP_DIR
    npm = shutil.which("npm")
    if npm is None:
        raise IdpError(
            "npm is not on PATH: the local OIDC provider needs Node.js 20+ and npm "
            f"(then run `npm ci` in {IDP_DIR})"
        )
    lock_path = Path(tempfile.gettempdir()) / "finci-idp-npm-ci.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if marker.exists():  # another process installed it while we waited
                return IDP_DIR
            try:
                result = subprocess.run(
                    [npm, "ci", "--no-audit", "--no-fund"],
                    cwd=IDP_DIR,
                    capture_output=True,
                    text=True,
                    timeout=_NPM_TIMEOUT,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                raise IdpError(
                    f"`npm ci` in {IDP_DIR} timed out after {_NPM_TIMEOUT:.0f}s"
                ) from exc
            if result.returncode != 0 or not marker.exists():
                tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
                raise IdpError(
                    f"`npm ci --no-audit --no-fund` in {IDP_DIR} failed "
                    f"(exit {result.returncode}):\n{tail}"
                )
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return IDP_DIR


# ----------------------------------------------------------------------------- process


class OidcProvider:
    """Context manager running ``node idp/server.js`` on a free 127.0.0.1 port."""

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        redirect_uris: Iterable[str],
        post_logout_redirect_uris: Iterable[str] = (),
        *,
        issuer: str | None = None,
        startup_timeout: float = _STARTUP_TIMEOUT,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uris = list(redirect_uris)
        self.post_logout_redirect_uris = list(post_logout_redirect_uris)
        if not self.redirect_uris:
            raise ValueError("at least one redirect URI is required")
        self._issuer_override = issuer
        self.startup_timeout = startup_timeout
        self.issuer: str = ""
        self.metadata: dict = {}
        self.process: subprocess.Popen[str] | None = None
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=60)
        self._stdout_lines: queue.Queue[str | None] = queue.Queue()
        self._threads: list[threading.Thread] = []

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> OidcProvider:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        if self.process is not None:
            raise IdpError("provider already started")
        ensure_idp_installed()
        node = shutil.which("node")
        if node is None:
            raise IdpError("node is not on PATH: the local OIDC provider needs Node.js 20+")
        env = {
            **os.environ,
            "IDP_PORT": "0",
            "IDP_CLIENT_ID": self.client_id,
            "IDP_CLIENT_SECRET": self.client_secret,
            "IDP_REDIRECT_URIS": " ".join(self.redirect_uris),
            "IDP_POST_LOGOUT_REDIRECT_URIS": " ".join(self.post_logout_redirect_uris),
        }
        env.pop("IDP_ISSUER", None)
        if self._issuer_override:
            env["IDP_ISSUER"] = self._issuer_override
        self.process = subprocess.Popen(
            [node, str(SERVER_JS)],
            cwd=IDP_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        self._threads = [
            threading.Thread(target=self._pump_stdout, name="idp-stdout", daemon=True),
            threading.Thread(target=self._pump_stderr, name="idp-stderr", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        try:
            self.issuer = self._read_issuer()
            self.metadata = self._wait_for_discovery()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        proc = self.process
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        for thread in self._threads:
            thread.join(timeout=2)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self.process = None

    # -- output handling -------------------------------------------------------------------

    def _pump_stdout(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self._stdout_lines.put(line)
        self._stdout_lines.put(None)

    def _pump_stderr(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        for line in self.process.stderr:
            self._stderr_tail.append(line.rstrip("\n"))

    def stderr_tail(self) -> str:
        return "\n".join(self._stderr_tail)

    def _fail(self, message: str) -> IdpError:
        time.sleep(0.1)  # let the stderr pump catch up
        return IdpError(f"{message}\n--- idp stderr (tail) ---\n{self.stderr_tail()}")

    def _read_issuer(self) -> str:
        deadline = time.monotonic() + self.startup_timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._fail(
                    f"local OIDC provider did not report its issuer within {self.startup_timeout}s"
                )
            try:
                line = self._stdout_lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                code = self.process.wait(timeout=5) if self.process else None
                raise self._fail(f"local OIDC provider exited during startup (exit code {code})")
            with contextlib.suppress(ValueError):
                payload = json.loads(line)
                if isinstance(payload, dict) and isinstance(payload.get("issuer"), str):
                    return payload["issuer"]

    def _wait_for_discovery(self) -> dict:
        url = f"{self.issuer}/.well-known/openid-configuration"
        deadline = time.monotonic() + self.startup_timeout
        last_error: object = None
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise self._fail(f"local OIDC provider exited (code {self.process.returncode})")
            try:
                response = requests.get(url, timeout=2)
                if response.status_code == 200:
                    return response.json()
                last_error = f"HTTP {response.status_code}"
            except requests.RequestException as exc:
                last_error = exc
            time.sleep(0.05)
        raise self._fail(f"discovery at {url} not available: {last_error}")

    # -- conveniences ----------------------------------------------------------------------

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def jwks(self) -> dict:
        response = requests.get(self.metadata["jwks_uri"], timeout=5)
        response.raise_for_status()
        return response.json()


# ----------------------------------------------------------------------------- HTML forms


@dataclass
class HtmlForm:
    action: str
    method: str
    id: str | None = None
    fields: list[tuple[str, str]] = field(default_factory=list)
    # (name, value, visible text) of submit buttons; name may be "" for nameless buttons
    buttons: list[tuple[str, str, str]] = field(default_factory=list)

    def data(self, button: tuple[str, str, str] | None = None) -> list[tuple[str, str]]:
        data = list(self.fields)
        if button is not None and button[0]:
            data.append((button[0], button[1]))
        return data


class _FormParser(HTMLParser):
    _VALUE_INPUTS = frozenset({"hidden", "text", "email", "password", "search", "tel", "url", ""})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[HtmlForm] = []
        self._current: HtmlForm | None = None
        self._orphans: list[tuple[str, object]] = []  # (form id, field or button)
        self._button: dict | None = None

    def _target(self, attrs: dict) -> HtmlForm | str | None:
        if attrs.get("form"):
            return attrs["form"]  # resolved by id once the document is parsed
        return self._current

    def _add(self, target: HtmlForm | str | None, kind: str, item: tuple) -> None:
        if isinstance(target, HtmlForm):
            getattr(target, kind).append(item)
        elif isinstance(target, str):
            self._orphans.append((target, (kind, item)))

    def handle_starttag(self, tag: str, attrs_list: list[tuple[str, str | None]]) -> None:
        attrs = {k: (v or "") for k, v in attrs_list}
        if tag == "form":
            self._current = HtmlForm(
                action=attrs.get("action", ""),
                method=(attrs.get("method") or "get").lower(),
                id=attrs.get("id"),
            )
            self.forms.append(self._current)
        elif tag == "input":
            kind = attrs.get("type", "").lower()
            name = attrs.get("name", "")
            if kind in ("submit", "image"):
                self._add(self._target(attrs), "buttons", (name, attrs.get("value", ""), ""))
            elif kind in ("checkbox", "radio"):
                if name and "checked" in attrs:
                    self._add(self._target(attrs), "fields", (name, attrs.get("value", "on")))
            elif name and kind in self._VALUE_INPUTS:
                self._add(self._target(attrs), "fields", (name, attrs.get("value", "")))
        elif tag == "button" and attrs.get("type", "submit").lower() == "submit":
            self._button = {"attrs": attrs, "text": []}

    def handle_data(self, data: str) -> None:
        if self._button is not None:
            self._button["text"].append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None
        elif tag == "button" and self._button is not None:
            attrs = self._button["attrs"]
            text = " ".join("".join(self._button["text"]).split())
            self._add(
                self._target(attrs),
                "buttons",
                (attrs.get("name", ""), attrs.get("value", ""), text),
            )
            self._button = None

    def close(self) -> None:
        super().close()
        by_id = {form.id: form for form in self.forms if form.id}
        for form_id, (kind, item) in self._orphans:
            if form_id in by_id:
                getattr(by_id[form_id], kind).append(item)


def parse_forms(html: str) -> list[HtmlForm]:
    parser = _FormParser()
    parser.feed(html)
    parser.close()
    return parser.forms


def _same_endpoint(url: str, target: str) -> bool:
    a, b = urlsplit(url), urlsplit(target)
    return (a.scheme, a.netloc, a.path) == (b.scheme, b.netloc, b.path)


def _excerpt(response: requests.Response) -> str:
    text = " ".join(response.text.split())
    return f"HTTP {response.status_code} at {response.url}: {text[:600]}"


def _drive(
    http_session: requests.Session,
    url: str,
    stop_at: list[str],
    choose_form,
    max_steps: int = 12,
) -> tuple[str, requests.Response | None]:
    """Follow redirects and submit forms until a redirect to one of ``stop_at``.

    Returns (url, None) for such a redirect, or (url, response) when a page has no form to
    submit (``choose_form`` returned None).
    """
    method, data = "GET", None
    for _ in range(max_steps):
        response = http_session.request(method, url, data=data, allow_redirects=False, timeout=10)
        if response.is_redirect:
            location = urljoin(url, response.headers["Location"])
            if any(_same_endpoint(location, target) for target in stop_at):
                return location, None
            method, data, url = "GET", None, location
            continue
        if response.status_code >= 400:
            raise IdpError(f"identity provider returned an error page: {_excerpt(response)}")
        chosen = choose_form(parse_forms(response.text), response)
        if chosen is None:
            return url, response
        form, button = chosen
        url = urljoin(response.url, form.action) if form.action else response.url
        method = form.method.upper()
        if method == "GET":
            url = requests.Request("GET", url, params=form.data(button)).prepare().url or url
            data = None
        else:
            data = form.data(button)
        if any(_same_endpoint(url, target) for target in stop_at):
            raise IdpError(
                f"identity provider answered with a form posting to {url}"
                " (response_mode=form_post?); use response_mode=query"
            )
    raise IdpError(f"gave up after {max_steps} steps; last URL {url}")


def complete_login(
    http_session: requests.Session,
    authorize_url: str,
    persona: str,
    *,
    redirect_uris: Iterable[str] | None = None,
) -> str:
    """Drive the authorization request through the IdP's login/consent pages.

    Returns the final redirect URL to the client's redirect_uri (carrying ``code`` and
    ``state``, or ``error``) *without* requesting it.  The redirect URI is taken from the
    ``redirect_uri`` query parameter of ``authorize_url`` unless ``redirect_uris`` is given.

    If ``http_session`` already holds an IdP session and the request needs no login (no
    ``prompt=login``, ``max_age`` satisfied), the IdP answers at once and ``persona`` is not used.
    """
    if persona not in PERSONAS:
        raise ValueError(f"unknown persona {persona!r}; expected one of {', '.join(PERSONAS)}")
    targets = list(redirect_uris or parse_qs(urlsplit(authorize_url).query).get("redirect_uri", []))
    if not targets:
        raise ValueError("authorize_url has no redirect_uri; pass redirect_uris=")

    def choose(forms: list[HtmlForm], response: requests.Response):
        for form in forms:
            if ("persona", persona) in form.fields:
                return form, (form.buttons[0] if form.buttons else None)
        raise IdpError(f"no sign-in form for persona {persona!r}: {_excerpt(response)}")

    location, _ = _drive(http_session, authorize_url, targets, choose)
    return location


def complete_logout(
    http_session: requests.Session,
    end_session_url: str,
    *,
    post_logout_redirect_uris: Iterable[str] | None = None,
) -> str:
    """Confirm an RP-initiated logout ("Yes, sign me out").

    Returns the redirect URL to the ``post_logout_redirect_uri`` (with ``state``) without
    requesting it, or the URL of the IdP's "Signed out" page when there is none.
    """
    targets = list(
        post_logout_redirect_uris
        or parse_qs(urlsplit(end_session_url).query).get("post_logout_redirect_uri", [])
    )

    def choose(forms: list[HtmlForm], response: requests.Response):
        for form in forms:
            for button in form.buttons:
                if button[:2] == ("logout", "yes"):
                    return form, button
        for form in forms:  # no IdP session: an auto-submitting form carrying logout=yes
            if ("logout", "yes") in form.fields:
                return form, None
        return None  # the final "Signed out" page

    location, response = _drive(http_session, end_session_url, targets, choose)
    if response is not None and targets:
        raise IdpError(f"logout did not redirect to {targets}: {_excerpt(response)}")
    return location
