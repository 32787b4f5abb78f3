"""Thousands of malformed requests: never a 5xx, never a stored message (QUALITY.md)."""

from __future__ import annotations

import json
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from console.finci.webhook_signature import sign
from console.ingress.models import StoredMessage
from tests.ingress.helpers import SECRET, message

PATH = "/webhooks/finci"
# Header values as a WSGI server hands them over: latin-1 text without line breaks.
LATIN1 = "".join(chr(c) for c in range(32, 256) if c != 0x7F)
header_text = st.text(alphabet=LATIN1, max_size=80)
signature_like = st.one_of(
    header_text,
    st.lists(st.tuples(st.sampled_from(["v1", "v1a", "v2", "", "V1"]),
                       st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefgh+/=,0123456789",
                               max_size=50)),
             max_size=4).map(lambda parts: " ".join(f"{v},{s}" for v, s in parts)),
)
scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
json_values = scalars | st.lists(scalars, max_size=3) | st.dictionaries(
    st.text(max_size=6), scalars, max_size=3)
# Anything but a valid message: no "created_at" means the schema always refuses.
json_bodies = st.dictionaries(
    st.sampled_from(["type", "id", "advice", "amount", "token_id", "x", ""]), json_values,
    max_size=5,
).map(lambda d: json.dumps(d).encode())
VALID_BODY = json.dumps(message()).encode()
raw_bodies = st.binary(max_size=300) | json_bodies | st.just(VALID_BODY)


cut = st.integers(1, 60)
timestamps = st.integers(-10**12, 10**13).map(str)
modes = st.sampled_from(["garbage", "signed", "signed_then_mangled"])
content_types = st.sampled_from(["application/json", "text/plain", "multipart/form-data; b=x", ""])
presence = st.integers(0, 9)


@st.composite
def malformed_requests(draw):
    body = draw(raw_bodies)
    now = int(time.time())
    webhook_id = draw(st.one_of(st.just("msg_fuzz"), header_text))
    timestamp = draw(st.one_of(st.just(str(now)), timestamps, header_text))
    mode = draw(modes)
    if body == VALID_BODY and mode == "signed":
        mode = "signed_then_mangled"  # a valid body may only travel with a broken signature
    headers: dict[str, str] = {}
    if mode == "garbage":
        signature = draw(signature_like)
    else:
        # A genuine signature over whatever id/timestamp/body we drew: gets past the signature
        # check whenever the headers are well-formed, so the body parser gets fuzzed too.
        try:
            signature = sign(SECRET, webhook_id, timestamp, body)
        except (UnicodeEncodeError, ValueError):
            signature = draw(signature_like)
        if mode == "signed_then_mangled":
            signature = signature[: max(0, len(signature) - draw(cut))]
    for name, value in (("webhook-id", webhook_id), ("webhook-timestamp", timestamp),
                        ("webhook-signature", signature)):
        if draw(presence):  # usually present, sometimes missing
            headers[name] = value
    if draw(st.booleans()):
        headers["X-Forwarded-For"] = draw(header_text)
    if draw(st.booleans()):
        headers["Content-Type"] = draw(content_types)
    return body, headers


# 500 examples of 2 requests on each backend: 2,000 requests in about ten seconds (batching
# amortises Hypothesis's per-example overhead).
@settings(max_examples=500, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(batch=st.lists(malformed_requests(), min_size=2, max_size=2))
def test_no_malformed_request_gets_a_5xx_or_stores_a_message(client, db_session, batch):
    for body, headers in batch:
        response = client.post(PATH, data=body, headers=headers)
        assert 400 <= response.status_code < 500, (response.status_code, headers)
    stored = db_session.scalar(select(func.count()).select_from(StoredMessage))
    assert stored == 0
