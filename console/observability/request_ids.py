"""A request id on every request, log line and audit row; echoed in ``X-Request-Id``."""

from __future__ import annotations

import base64
import os
import re

from flask import Flask, g, request

_ACCEPTABLE = re.compile(r"[A-Za-z0-9._-]{8,64}")
# Request ids land in the append-only audit log, which can never be cleaned: an upstream id
# that could hold a card number (13+ digits, with or without separators) is not taken.
_CARD_LENGTH_DIGITS = re.compile(r"[0-9](?:[._-]*[0-9]){12}")


def new_request_id() -> str:
    # Base32, not hex: long runs of decimal digits in ids would look like card numbers to the
    # redaction filter and the card-number scanners.
    return base64.b32encode(os.urandom(15)).decode().lower()


def _through_trusted_proxies(trusted_proxy_count: int) -> bool:
    """The request came through the reverse proxies the deployment declares in front of us
    (``CONSOLE_TRUSTED_PROXY_COUNT``, the setting ProxyFix trusts): each adds a hop to
    X-Forwarded-For. Without them any client could name its own request in the audit log."""
    if not trusted_proxy_count:
        return False
    hops = request.headers.get("X-Forwarded-For", "").split(",")
    return sum(1 for hop in hops if hop.strip()) >= trusted_proxy_count


def init_app(app: Flask, *, trusted_proxy_count: int = 0) -> None:
    @app.before_request
    def _assign():
        # Accept an upstream id only from our trusted proxies, and only when it is well-formed:
        # never trust it blindly.
        incoming = request.headers.get("X-Request-Id", "")
        acceptable = (incoming and _through_trusted_proxies(trusted_proxy_count)
                      and _ACCEPTABLE.fullmatch(incoming)
                      and _CARD_LENGTH_DIGITS.search(incoming) is None)
        g.request_id = incoming if acceptable else new_request_id()

    @app.after_request
    def _echo(response):
        if "request_id" in g:
            response.headers["X-Request-Id"] = g.request_id
        return response
