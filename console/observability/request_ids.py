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


def init_app(app: Flask) -> None:
    @app.before_request
    def _assign():
        # Accept an upstream proxy's id only when it is well-formed; never trust it blindly.
        incoming = request.headers.get("X-Request-Id", "")
        acceptable = (_ACCEPTABLE.fullmatch(incoming)
                      and _CARD_LENGTH_DIGITS.search(incoming) is None)
        g.request_id = incoming if acceptable else new_request_id()

    @app.after_request
    def _echo(response):
        if "request_id" in g:
            response.headers["X-Request-Id"] = g.request_id
        return response
