"""Building signed FINCI deliveries for tests (shared by ingress and pipeline tests).

Every fixture body carries well-known test card numbers on purpose: nothing may reach a table,
a log line or a response unmasked.
"""

from __future__ import annotations

import itertools
import json
import time

from console.finci import contract
from console.finci.webhook_signature import WebhookSecret, signed_headers
from console.ingress.settings import IngressSettings
from tests.support.ids import letters, new_id

SECRET = WebhookSecret(b"ingress-test-secret-0123456789ab")
OTHER_SECRET = WebhookSecret(b"ingress-rotated-secret-0123456789")
TEST_PANS = ("4111111111111111", "5555555555554444", "4000056655665556")

_counter = itertools.count(1)


def ingress_settings(**overrides) -> IngressSettings:
    values = dict(secrets=(SECRET,), rate_limit_per_s=1_000_000.0, rate_limit_burst=1_000_000)
    values.update(overrides)
    return IngressSettings(**values)


# The business-key fingerprint secret for tests that call ingress.store directly (the route
# derives it from the app's SECRET_KEY).
IDENTITY_KEY = b"test-identity-key"


def new_webhook_id() -> str:
    # Letters only after the prefix: hex or decimal ids can contain Luhn-valid digit runs, which
    # the suite's card-number scanner would (rightly) flag wherever they are shown.
    return new_id("msg", 32)


def message(type_: str = "presentment", *, id_: str | None = None, advice: bool | None = None,
            **fields) -> dict:
    """A valid body of the given type, with test card numbers in free-text and unknown fields."""
    number = next(_counter)
    # Letters only (tests.support.ids): "fin_<hex>_<n>" could end in 13+ digits across the "_" (a
    # separator to the masker) and pass the Luhn check, a "card number" in the scanners.
    body: dict = {"type": type_, "id": id_ or f"fin_{letters(12)}_{number}",
                  "created_at": "2026-11-27T08:00:00Z"}
    if type_ in {"authorization", "reversal", "presentment", "refund"}:
        body.update(token_id="tok_abc", amount=1250, currency="EUR",
                    merchant={"name": f"TEST SHOP {TEST_PANS[1][:4]} {TEST_PANS[1][4:8]} "
                                      f"{TEST_PANS[1][8:12]} {TEST_PANS[1][12:]}",
                              "mcc": "5411", "country": "DE"})
    if type_ == "authorization":
        body["advice"] = bool(advice)
        if advice:
            body["response_code"] = "Approved"
    if type_ == "card_status":
        body.update(token_id="tok_abc", token_status="active")
    # Unknown fields are kept (B.3): this one carries a full test card number.
    body["card_reference"] = TEST_PANS[0]
    body.update(fields)
    return body


def encode(body: dict | bytes) -> bytes:
    return body if isinstance(body, bytes) else json.dumps(body).encode()


def signed(body: dict | bytes, *, secret: WebhookSecret = SECRET, webhook_id: str | None = None,
           timestamp: int | None = None) -> tuple[bytes, dict[str, str]]:
    raw = encode(body)
    headers = signed_headers(secret, webhook_id or new_webhook_id(),
                             int(time.time()) if timestamp is None else timestamp, raw)
    headers["Content-Type"] = "application/json"
    return raw, headers


def deliver(client, body: dict | bytes, **kwargs):
    """POST one signed delivery through a Flask test client; returns the response."""
    extra_headers = kwargs.pop("headers", {})
    environ = kwargs.pop("environ_base", None) or {}
    raw, headers = signed(body, **kwargs)
    headers.update(extra_headers)
    return client.post("/webhooks/finci", data=raw, headers=headers, environ_base=environ)


WEBHOOK_PATH = "/webhooks/finci"
HEADER_ID = contract.HEADER_WEBHOOK_ID
