"""POST /webhooks/finci: verification matrix, size cap, source checks, answers."""

from __future__ import annotations

import hashlib
import io
import json

import pytest
from sqlalchemy import select

from console import create_app
from console.db import Database, make_engine
from console.finci import contract
from console.finci.webhook_signature import WebhookSecret, sign
from console.ingress.models import StoredMessage, WebhookDelivery, WebhookRejection
from console.security.redaction import find_pans
from console.settings import Environment
from tests.conftest import make_settings
from tests.ingress.helpers import (
    OTHER_SECRET,
    SECRET,
    WEBHOOK_PATH,
    deliver,
    encode,
    ingress_settings,
    message,
    new_webhook_id,
    signed,
)

VECTOR_SECRET = WebhookSecret.parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
VECTOR_HEADERS = {
    "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
    "webhook-timestamp": "1614265330",
    "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
}


def only_rejection(db_session) -> WebhookRejection:
    rows = db_session.scalars(select(WebhookRejection)).all()
    assert len(rows) == 1
    return rows[0]


def assert_nothing_but_one_rejection(counts):
    assert counts() == {"messages": 0, "deliveries": 0, "rejections": 1}


# --- the Standard Webhooks test vector ------------------------------------------------------

@pytest.mark.parametrize("ingress_config", [ingress_settings(secrets=(VECTOR_SECRET,))],
                         indirect=True)
def test_the_standard_webhooks_test_vector_passes_verification(client, clock, db_session,
                                                               counts):
    clock.now = 1614265330
    response = client.post(WEBHOOK_PATH, data=b'{"test": 2432232314}', headers=VECTOR_HEADERS)
    # The signature verifies; the body is not a FINCI message, so it stops at parsing.
    assert response.status_code == 400
    assert only_rejection(db_session).reason.startswith("body_")
    assert_nothing_but_one_rejection(counts)


@pytest.mark.parametrize("ingress_config", [ingress_settings(secrets=(VECTOR_SECRET,))],
                         indirect=True)
def test_the_test_vector_with_one_changed_byte_is_unauthorized(client, clock, db_session):
    clock.now = 1614265330
    response = client.post(WEBHOOK_PATH, data=b'{"test": 2432232315}', headers=VECTOR_HEADERS)
    assert response.status_code == 401
    assert only_rejection(db_session).reason == "signature_mismatch"


# --- the negative matrix ----------------------------------------------------------------------

def _valid_parts(clock):
    body = json.dumps(message()).encode()
    webhook_id = new_webhook_id()
    timestamp = str(int(clock.now))
    return body, {"webhook-id": webhook_id, "webhook-timestamp": timestamp,
                  "webhook-signature": sign(SECRET, webhook_id, timestamp, body)}


SIGNATURE_CASES = {
    "missing id": ({"webhook-id": None}, "missing_header"),
    "missing timestamp": ({"webhook-timestamp": None}, "missing_header"),
    "missing signature": ({"webhook-signature": None}, "missing_header"),
    "empty signature": ({"webhook-signature": ""}, "missing_header"),
    "id with a space": ({"webhook-id": "msg one"}, "malformed_id"),
    "id too long": ({"webhook-id": "m" * 257}, "malformed_id"),
    "id not ascii": ({"webhook-id": "msg_é"}, "malformed_id"),
    "timestamp with letters": ({"webhook-timestamp": "12a"}, "malformed_timestamp"),
    "negative timestamp": ({"webhook-timestamp": "-5"}, "malformed_timestamp"),
    "timestamp with plus": ({"webhook-timestamp": "+1614265330"}, "malformed_timestamp"),
    "float timestamp": ({"webhook-timestamp": "1614265330.0"}, "malformed_timestamp"),
    "exponent timestamp": ({"webhook-timestamp": "1e9"}, "malformed_timestamp"),
    "huge timestamp": ({"webhook-timestamp": "9" * 40}, "malformed_timestamp"),
    "bare v1": ({"webhook-signature": "v1"}, "malformed_signature"),
    "three parts": ({"webhook-signature": "v1,a,b"}, "malformed_signature"),
    "short base64": ({"webhook-signature": "v1,abc"}, "malformed_signature"),
    "empty value": ({"webhook-signature": "v1,"}, "malformed_signature"),
    "empty version": ({"webhook-signature": ",abc"}, "malformed_signature"),
    "not base64": ({"webhook-signature": "v1," + "!" * 43 + "="}, "malformed_signature"),
    "unknown version only": ({"webhook-signature": "v2," + "A" * 43 + "="},
                             "no_supported_signature"),
    "asymmetric version only": ({"webhook-signature": "v1a," + "A" * 86 + "=="},
                                "no_supported_signature"),
    "wrong signature": ({"webhook-signature": "v1," + "A" * 43 + "="}, "signature_mismatch"),
}


@pytest.mark.parametrize("case", SIGNATURE_CASES, ids=list(SIGNATURE_CASES))
def test_bad_signature_headers_are_401_and_write_only_the_rejection(client, clock, counts,
                                                                     db_session, case):
    overrides, reason = SIGNATURE_CASES[case]
    body, headers = _valid_parts(clock)
    for name, value in overrides.items():
        if value is None:
            headers.pop(name)
        else:
            headers[name] = value
    response = client.post(WEBHOOK_PATH, data=body, headers=headers)
    assert response.status_code == 401
    assert response.json == {"status": "error", "error": "unauthorized"}
    rejection = only_rejection(db_session)
    assert rejection.reason == reason
    assert rejection.http_status == 401
    assert_nothing_but_one_rejection(counts)


def test_a_signature_for_another_id_or_timestamp_does_not_verify(client, clock, counts):
    body, headers = _valid_parts(clock)
    headers["webhook-id"] = new_webhook_id()
    assert client.post(WEBHOOK_PATH, data=body, headers=headers).status_code == 401
    body, headers = _valid_parts(clock)
    headers["webhook-timestamp"] = str(int(clock.now) - 1)
    assert client.post(WEBHOOK_PATH, data=body, headers=headers).status_code == 401
    assert counts()["messages"] == 0


@pytest.mark.parametrize(("offset", "expected", "reason"), [
    (-300, 200, None), (-301, 401, "timestamp_too_old"),
    (300, 200, None), (301, 401, "timestamp_too_new"),
])
def test_timestamp_tolerance_is_300_seconds_both_ways_inclusive(client, clock, db_session,
                                                                offset, expected, reason):
    timestamp = int(clock.now) + offset
    response = deliver(client, message(), timestamp=timestamp)
    assert response.status_code == expected
    if reason:
        assert only_rejection(db_session).reason == reason
        assert db_session.scalar(select(StoredMessage)) is None


def test_unknown_version_tags_beside_a_valid_v1_are_skipped(client, clock):
    raw, headers = signed(message(), timestamp=int(clock.now))
    headers["webhook-signature"] = ("v1a," + "B" * 86 + "== v2,whatever "
                                    + headers["webhook-signature"])
    assert client.post(WEBHOOK_PATH, data=raw, headers=headers).status_code == 200


@pytest.mark.parametrize("ingress_config",
                         [ingress_settings(secrets=(SECRET, OTHER_SECRET))], indirect=True)
def test_rotation_accepts_either_active_secret_and_records_which(client, clock, db_session):
    first = deliver(client, message(), secret=SECRET, timestamp=int(clock.now))
    second = deliver(client, message(), secret=OTHER_SECRET, timestamp=int(clock.now))
    assert (first.status_code, second.status_code) == (200, 200)
    verified_by = {m.verified_by for m in db_session.scalars(select(StoredMessage))}
    assert verified_by == {SECRET.fingerprint, OTHER_SECRET.fingerprint}


def test_a_sender_signing_with_old_and_new_secret_verifies_during_rotation(client, clock):
    raw, headers = signed(message(), secret=OTHER_SECRET, timestamp=int(clock.now))
    headers["webhook-signature"] += " " + sign(SECRET, headers["webhook-id"],
                                               headers["webhook-timestamp"], raw)
    assert client.post(WEBHOOK_PATH, data=raw, headers=headers).status_code == 200


def test_a_retired_secret_no_longer_verifies(client, clock, db_session):
    response = deliver(client, message(), secret=OTHER_SECRET, timestamp=int(clock.now))
    assert response.status_code == 401
    assert only_rejection(db_session).reason == "signature_mismatch"


@pytest.mark.parametrize("ingress_config", [ingress_settings(secrets=())], indirect=True)
def test_without_any_secret_everything_is_refused(client, clock, db_session):
    assert deliver(client, message(), timestamp=int(clock.now)).status_code == 401
    assert only_rejection(db_session).reason == "no_active_secret"


def test_a_sandbox_secret_never_verifies_production_traffic(db_factory, test_database):
    production = make_settings(db_factory.shared_url, environment=Environment.PRODUCTION,
                               ingress=ingress_settings(secrets=(OTHER_SECRET,)))
    app = create_app(production, database=test_database)
    response = deliver(app.test_client(), message(), secret=SECRET)
    assert response.status_code == 401


# --- bodies -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "reason"), [
    (b"", "body_not_json"),
    (b"not json", "body_not_json"),
    (b"\xff\xfe{}", "body_not_utf8"),
    (b"[]", "body_not_object"),
    (b'{"type": "presentment"}', "body_schema_violation"),
    (b'{"a": 1, "a": 2}', "body_duplicate_key"),
    (b'{"x": NaN}', "body_non_finite_number"),
])
def test_a_verified_but_malformed_body_is_400_and_not_stored(client, clock, counts, db_session,
                                                             body, reason):
    response = deliver(client, body, timestamp=int(clock.now))
    assert response.status_code == 400
    assert response.json == {"status": "error", "error": "malformed"}
    assert only_rejection(db_session).reason == reason
    assert_nothing_but_one_rejection(counts)


@pytest.mark.parametrize("amount", [contract.AMOUNT_MAX_MINOR_UNITS + 1, 2**63 - 1])
def test_an_amount_past_the_contract_bound_is_refused_at_the_edge_and_loses_nothing_else(
        client, clock, counts, db_session, amount):
    # 2^63 - 1 fitted the column, was acknowledged, then overflowed the sums it was posted into.
    before = deliver(client, message("presentment"), timestamp=int(clock.now))
    refused = deliver(client, message("presentment", amount=amount), timestamp=int(clock.now))
    after = deliver(client, message("presentment"), timestamp=int(clock.now))
    assert (before.status_code, refused.status_code, after.status_code) == (200, 400, 200)
    assert refused.json == {"status": "error", "error": "malformed"}
    assert only_rejection(db_session).reason == "body_schema_violation"
    assert counts() == {"messages": 2, "deliveries": 2, "rejections": 1}
    largest = deliver(client, message("presentment", amount=contract.AMOUNT_MAX_MINOR_UNITS),
                      timestamp=int(clock.now))
    assert largest.status_code == 200


@pytest.mark.parametrize("ingress_config", [ingress_settings(max_body_bytes=2048)], indirect=True)
def test_a_body_over_the_cap_is_413_by_content_length(client, clock, counts, db_session):
    body = message(padding="x" * 4096)
    response = deliver(client, body, timestamp=int(clock.now))
    assert response.status_code == 413
    assert only_rejection(db_session).reason == "body_too_large"
    assert_nothing_but_one_rejection(counts)


@pytest.mark.parametrize("ingress_config", [ingress_settings(max_body_bytes=2048)], indirect=True)
def test_a_chunked_body_without_content_length_is_capped_while_reading(client, clock, counts):
    class Endless(io.RawIOBase):
        """A client that never stops sending: only cap+1 bytes may ever be read."""

        read_total = 0

        def readable(self):
            return True

        def readinto(self, buffer):
            Endless.read_total += len(buffer)
            buffer[:] = b"x" * len(buffer)
            return len(buffer)

    _raw, headers = signed(message(), timestamp=int(clock.now))
    response = client.post(WEBHOOK_PATH, headers=headers, environ_overrides={
        "wsgi.input": io.BufferedReader(Endless()), "wsgi.input_terminated": True,
        "CONTENT_LENGTH": "", "HTTP_TRANSFER_ENCODING": "chunked"})
    assert response.status_code == 413
    assert Endless.read_total <= 2048 + 1 + io.DEFAULT_BUFFER_SIZE
    assert counts()["messages"] == 0


@pytest.mark.parametrize("ingress_config", [ingress_settings(max_body_bytes=2048)], indirect=True)
def test_a_chunked_body_within_the_cap_is_accepted(client, clock):
    raw, headers = signed(message(), timestamp=int(clock.now))
    response = client.post(WEBHOOK_PATH, headers=headers, environ_overrides={
        "wsgi.input": io.BytesIO(raw), "wsgi.input_terminated": True, "CONTENT_LENGTH": "",
        "HTTP_TRANSFER_ENCODING": "chunked"})
    assert response.status_code == 200


def _body_of_exactly(size: int) -> bytes:
    raw = json.dumps(message()).encode()
    return raw[:-1] + b" " * (size - len(raw)) + b"}"


def _chunked(raw: bytes) -> dict:
    return {"wsgi.input": io.BytesIO(raw), "wsgi.input_terminated": True, "CONTENT_LENGTH": "",
            "HTTP_TRANSFER_ENCODING": "chunked"}


@pytest.mark.parametrize("ingress_config", [ingress_settings(max_body_bytes=2048)], indirect=True)
def test_a_chunked_body_of_exactly_the_cap_is_accepted_like_one_with_content_length(
        client, clock, counts):
    raw, headers = signed(_body_of_exactly(2048), timestamp=int(clock.now))
    assert len(raw) == 2048
    response = client.post(WEBHOOK_PATH, headers=headers, environ_overrides=_chunked(raw))
    assert response.status_code == 200
    assert counts() == {"messages": 1, "deliveries": 1, "rejections": 0}


@pytest.mark.parametrize("ingress_config", [ingress_settings(max_body_bytes=2048)], indirect=True)
def test_a_chunked_body_one_byte_over_the_cap_is_413_and_recorded(client, clock, counts,
                                                                  db_session):
    raw, headers = signed(_body_of_exactly(2049), timestamp=int(clock.now))
    response = client.post(WEBHOOK_PATH, headers=headers, environ_overrides=_chunked(raw))
    assert response.status_code == 413
    assert response.json == {"status": "error", "error": "too_large"}
    assert only_rejection(db_session).reason == "body_too_large"
    assert_nothing_but_one_rejection(counts)


def test_a_body_shorter_than_its_content_length_is_a_4xx(client, clock, counts):
    raw, headers = signed(message(), timestamp=int(clock.now))
    response = client.post(WEBHOOK_PATH, headers=headers, environ_overrides={
        "wsgi.input": io.BytesIO(raw[:10]), "CONTENT_LENGTH": str(len(raw))})
    assert 400 <= response.status_code < 500
    assert counts()["messages"] == 0


# --- source checks ----------------------------------------------------------------------------

ALLOW_10 = ingress_settings(allow_cidrs=(__import__("ipaddress").ip_network("10.0.0.0/8"),))
BEHIND_PROXY = ingress_settings(
    allow_cidrs=(__import__("ipaddress").ip_network("10.0.0.0/8"),),
    trusted_proxies=(__import__("ipaddress").ip_network("127.0.0.1/32"),))


@pytest.mark.parametrize("ingress_config", [ALLOW_10], indirect=True)
def test_a_source_outside_the_allowlist_is_403(client, clock, counts, db_session):
    response = deliver(client, message(), timestamp=int(clock.now))
    assert response.status_code == 403
    rejection = only_rejection(db_session)
    assert (rejection.reason, rejection.source_ip) == ("source_not_allowed", "127.0.0.1")
    assert_nothing_but_one_rejection(counts)


@pytest.mark.parametrize("ingress_config", [ALLOW_10], indirect=True)
def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(client, clock):
    response = deliver(client, message(), timestamp=int(clock.now),
                       headers={"X-Forwarded-For": "10.1.2.3"})
    assert response.status_code == 403


@pytest.mark.parametrize("ingress_config", [ALLOW_10], indirect=True)
def test_an_allowed_peer_is_accepted(client, clock, db_session):
    response = deliver(client, message(), timestamp=int(clock.now),
                       environ_base={"REMOTE_ADDR": "10.9.8.7"})
    assert response.status_code == 200
    assert db_session.scalar(select(StoredMessage.source_ip)) == "10.9.8.7"


@pytest.mark.parametrize("ingress_config", [BEHIND_PROXY], indirect=True)
@pytest.mark.parametrize(("forwarded", "expected", "client_ip"), [
    ("10.1.2.3", 200, "10.1.2.3"),
    ("10.1.2.3, 127.0.0.1", 200, "10.1.2.3"),          # two hops of our own proxies
    ("10.1.2.3, 8.8.8.8", 403, "8.8.8.8"),             # spoofed left part is not believed
    ("8.8.8.8, 10.1.2.3", 200, "10.1.2.3"),            # the right-most untrusted hop decides
    (None, 403, "127.0.0.1"),                          # the proxy itself is not allowlisted
])
def test_x_forwarded_for_is_honoured_only_from_trusted_proxies(client, clock, db_session,
                                                               forwarded, expected, client_ip):
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    response = deliver(client, message(), timestamp=int(clock.now), headers=headers)
    assert response.status_code == expected
    if expected == 200:
        delivery = db_session.scalar(select(WebhookDelivery))
        assert (delivery.source_ip, delivery.peer_ip) == (client_ip, "127.0.0.1")
    else:
        assert only_rejection(db_session).source_ip == client_ip


@pytest.mark.parametrize("ingress_config", [BEHIND_PROXY], indirect=True)
@pytest.mark.parametrize("forwarded", ["not-an-ip", "10.1.2.3,,", ",".join(["10.0.0.1"] * 30)])
def test_a_malformed_forwarding_chain_from_a_trusted_proxy_is_400(client, clock, db_session,
                                                                  forwarded):
    response = deliver(client, message(), timestamp=int(clock.now),
                       headers={"X-Forwarded-For": forwarded})
    assert response.status_code == 400
    assert only_rejection(db_session).reason == "forwarded_for_malformed"


PIN = hashlib.sha256(b"finci client certificate").hexdigest()
PINNED = ingress_settings(trusted_proxies=(__import__("ipaddress").ip_network("127.0.0.0/8"),),
                          client_cert_pins=frozenset({PIN}))


@pytest.mark.parametrize("ingress_config", [PINNED], indirect=True)
@pytest.mark.parametrize(("peer", "header", "expected", "reason"), [
    ("127.0.0.1", PIN, 200, None),
    ("127.0.0.1", ":".join(PIN[i:i + 2].upper() for i in range(0, 64, 2)), 200, None),
    ("127.0.0.1", None, 403, "client_cert_missing"),
    ("127.0.0.1", "ab" * 32, 403, "client_cert_not_pinned"),
    ("192.0.2.5", PIN, 403, "client_cert_unverifiable"),  # header not from our TLS proxy
])
def test_client_certificate_pinning(client, clock, db_session, peer, header, expected, reason):
    headers = {"X-Client-Cert-Sha256": header} if header else {}
    response = deliver(client, message(), timestamp=int(clock.now), headers=headers,
                       environ_base={"REMOTE_ADDR": peer})
    assert response.status_code == expected
    if reason:
        assert only_rejection(db_session).reason == reason


@pytest.mark.parametrize("ingress_config",
                         [ingress_settings(rate_limit_per_s=0.001, rate_limit_burst=2)],
                         indirect=True)
def test_a_flood_from_one_source_is_rate_limited_without_writing(client, clock, counts):
    answers = [deliver(client, message(), timestamp=int(clock.now)).status_code
               for _ in range(4)]
    assert answers == [200, 200, 429, 429]
    limited = deliver(client, message(), timestamp=int(clock.now))
    assert limited.headers["Retry-After"] == "1"
    assert counts() == {"messages": 2, "deliveries": 2, "rejections": 0}
    other = deliver(client, message(), timestamp=int(clock.now),
                    environ_base={"REMOTE_ADDR": "127.0.0.2"})
    assert other.status_code == 200


# --- answers ----------------------------------------------------------------------------------

def test_an_accepted_message_is_200_json_without_cookies(client, clock):
    response = deliver(client, message(), timestamp=int(clock.now))
    assert response.status_code == 200
    assert response.json == {"status": "success"}
    assert response.mimetype == "application/json"
    assert "Set-Cookie" not in response.headers


def test_the_ingress_never_redirects(client, clock):
    raw, headers = signed(message(), timestamp=int(clock.now))
    for path in (WEBHOOK_PATH + "/", WEBHOOK_PATH.upper(), WEBHOOK_PATH + "?x=1"):
        response = client.post(path, data=raw, headers=headers)
        assert not 300 <= response.status_code < 400
    assert not 300 <= client.get(WEBHOOK_PATH).status_code < 400


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE", "PROPFIND"])
def test_other_methods_on_the_webhook_path_are_a_json_405_and_write_nothing(client, counts,
                                                                           method):
    response = client.open(WEBHOOK_PATH, method=method, data=b"{}",
                           headers={"Origin": "https://evil.example"})
    assert response.status_code == 405
    assert response.mimetype == "application/json"
    assert response.json == {"status": "error", "error": "method_not_allowed"}
    assert "POST" in response.headers["Allow"]
    assert counts() == {"messages": 0, "deliveries": 0, "rejections": 0}


def test_no_csrf_token_is_needed_and_a_foreign_origin_does_not_matter(client, clock):
    response = deliver(client, message(), timestamp=int(clock.now),
                       headers={"Origin": "https://evil.example"})
    assert response.status_code == 200


def test_503_with_retry_after_when_the_database_is_unreachable(settings):
    engine = make_engine("postgresql+psycopg://postgres@127.0.0.1:9/none", connect_timeout_s=1)
    app = create_app(settings, database=Database(engine))
    response = deliver(app.test_client(), message())
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.json == {"status": "error", "error": "unavailable"}


def test_refusals_reveal_nothing_and_store_no_body(client, clock, db_session):
    body = message()
    raw, headers = signed(body, timestamp=int(clock.now))
    headers["webhook-signature"] = "v1," + "A" * 43 + "="
    response = client.post(WEBHOOK_PATH, data=raw, headers=headers)
    assert len(response.data) < 60
    rejection = only_rejection(db_session)
    stored = " ".join(str(getattr(rejection, c.key)) for c in WebhookRejection.__table__.c)
    assert body["id"] not in stored
    assert rejection.webhook_id == headers["webhook-id"]


def test_a_card_number_in_a_rejected_webhook_id_is_masked(client, clock, db_session):
    raw, headers = signed(message(), timestamp=int(clock.now), webhook_id="4111111111111111")
    headers["webhook-signature"] = "v1," + "A" * 43 + "="
    client.post(WEBHOOK_PATH, data=raw, headers=headers)
    assert find_pans(only_rejection(db_session).webhook_id) == []


def test_a_card_number_as_a_repeated_key_name_is_masked_in_the_rejection(client, clock,
                                                                         db_session):
    raw = encode(message()).replace(b'{"type"', b'{"4111111111111111": 1, "4111111111111111": 2, '
                                    b'"type"', 1)
    response = client.post(WEBHOOK_PATH, data=raw, headers=signed(raw, timestamp=int(clock.now))[1])
    assert response.status_code == 400
    rejection = only_rejection(db_session)
    assert rejection.reason == "body_duplicate_key"
    assert rejection.detail == "411111******1111"


def test_recorded_headers_keep_only_printable_ascii(client, clock, db_session):
    response = deliver(client, message(), timestamp=int(clock.now),
                       headers={"User-Agent": "FINCI\x01bot/\xfc\x7f1"})
    assert response.status_code == 200
    delivery = db_session.scalars(select(WebhookDelivery)).one()
    assert json.loads(delivery.headers)["user-agent"] == "FINCI?bot/??1"


def test_a_server_side_http_error_is_short_json_and_not_blamed_on_the_sender(app, client, clock,
                                                                             counts):
    from flask import abort, request

    @app.before_request
    def _down_for_maintenance():
        if request.blueprint == "ingress":
            abort(503)

    response = deliver(client, message(), timestamp=int(clock.now))
    assert response.status_code == 503
    assert response.json == {"status": "error", "error": "unavailable"}
    assert counts() == {"messages": 0, "deliveries": 0, "rejections": 0}
