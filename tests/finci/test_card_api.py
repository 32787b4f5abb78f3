import contextlib
import hashlib
import hmac
import json
import pickle
import random
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from console.finci import contract
from console.finci.card_api import (
    Card,
    CardApiClient,
    CardApiError,
    CardList,
    ErrorKind,
    mask_card_number,
    signature,
)

TOKEN = "tok-live-0123456789"
SECRET = b"finci-test-secret"
VISA_TEST = "4111111111111111"
MC_TEST = "5555555555554444"


# --- the signature string (B.6) -----------------------------------------------------------------

# Computed once, outside Python, with:
#   printf '%s' '1700000000/v1/update-card-status/tok_123{"token_status":"deactivated"}' \
#     | openssl dgst -sha256 -hmac 'finci-test-secret'
STATUS_VECTOR = "d390099ef373aaac53b5f752ec065364fda368937fa59c7702299885398eb0e6"
#   printf '%s' '1700000000/v1/get-cards' | openssl dgst -sha256 -hmac 'finci-test-secret'
EMPTY_BODY_VECTOR = "ad475139eb4a7896db131a46add934c64790a0b284fd15dfdf64bc4f95afaee9"


def test_signature_matches_the_fixed_vector():
    body = '{"token_status":"deactivated"}'
    assert signature(SECRET, 1700000000, "/v1/update-card-status/tok_123", body) == STATUS_VECTOR


def test_signature_over_an_empty_body_matches_the_fixed_vector():
    assert signature(SECRET, 1700000000, "/v1/get-cards", "") == EMPTY_BODY_VECTOR


def test_signature_is_lowercase_hex_and_covers_every_part():
    base = signature(SECRET, 1700000000, "/v1/get-cards", "{}")
    assert re.fullmatch(r"[0-9a-f]{64}", base)
    assert signature(SECRET, 1700000001, "/v1/get-cards", "{}") != base
    assert signature(SECRET, 1700000000, "/v1/get-card", "{}") != base
    assert signature(SECRET, 1700000000, "/v1/get-cards", "{ }") != base
    assert signature(b"other", 1700000000, "/v1/get-cards", "{}") != base


# --- card number masking ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "masked", "exposed"),
    [
        ("4111-11**-****-1111", "4111-11**-****-1111", False),
        (VISA_TEST, "4111-11**-****-1111", True),
        (MC_TEST, "5555-55**-****-4444", True),
        ("5555 5555 5555 4444", "5555-55**-****-4444", True),
        ("5555-5555-5555-4444", "5555-55**-****-4444", True),
        ("555555******4444", "5555-55**-****-4444", False),
        ("5555555555*****444", "5555-55**-****-*444", None),
    ],
)
def test_card_numbers_are_only_ever_kept_masked(value, masked, exposed):
    if exposed is None:
        with pytest.raises(ValueError):
            mask_card_number(value)
        return
    assert mask_card_number(value) == (masked, exposed)


@pytest.mark.parametrize(
    "value", ["", "n/a", "4111", "4111-11**", "x" * 16, "41111111111111111111"]
)
def test_values_that_are_not_card_numbers_are_refused(value):
    with pytest.raises(ValueError):
        mask_card_number(value)


@settings(max_examples=300, deadline=None, database=None)
@given(st.integers(min_value=10**11, max_value=10**19 - 1).map(str))
def test_masking_never_keeps_more_than_first_six_and_last_four_digits(pan):
    masked, exposed = mask_card_number(pan)
    assert re.fullmatch(contract.MASKED_CARD_NUMBER_PATTERN, masked)
    assert exposed is (len(pan) > 10)
    assert masked.replace("-", "").replace("*", "") == pan[:6] + pan[-4:]


# --- a local fake FINCI -------------------------------------------------------------------------


@dataclass
class Reply:
    status: int = 200
    body: object = field(default_factory=lambda: {"status": "success", "errors": []})
    headers: dict = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Seen:
    method: str
    path: str
    headers: dict
    body: bytes


class FakeFinci:
    def __init__(self):
        self.replies: list[Reply] = []
        self.seen: list[Seen] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                fake.seen.append(Seen(self.command, self.path, dict(self.headers), body))
                reply = fake.replies.pop(0) if fake.replies else Reply()
                if reply.delay:
                    time.sleep(reply.delay)
                raw = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body)
                raw = raw.encode() if isinstance(raw, str) else raw
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                except OSError:
                    pass  # the client gave up (timeout test)

            do_POST = do_PATCH = do_GET = _handle

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.handle_error = lambda *args: None
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def reset(self):
        self.replies.clear()
        self.seen.clear()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture(scope="module")
def fake_finci():
    fake = FakeFinci()
    yield fake
    fake.close()


@pytest.fixture
def finci(fake_finci):
    fake_finci.reset()
    return fake_finci


class Sleeps(list):
    def __call__(self, seconds):
        self.append(seconds)


@pytest.fixture
def sleeps():
    return Sleeps()


@pytest.fixture
def make_client(finci, sleeps):
    clients = []

    def make(**kwargs):
        options = {
            "timeout": (1.0, 1.0),
            "max_attempts": 3,
            "backoff": 0.5,
            "sleep": sleeps,
            "clock": lambda: 1700000000.0,
            "rng": random.Random(7),
            "allow_http": True,
        }
        base_url = kwargs.pop("base_url", finci.url)
        options.update(kwargs)
        client = CardApiClient(base_url, TOKEN, SECRET, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def card_item(**overrides):
    item = {
        "token_id": "tok_123",
        "embossing_name": "ADA LOVELACE",
        "card_number": "5555-55**-****-4444",
        "expiration_date": "2028-09",
        "product_id": "prod_1",
    }
    item.update(overrides)
    return item


def cards_reply(*items, total=None):
    return Reply(
        body={"status": "success", "errors": [], "items": list(items), "total": total or len(items)}
    )


def assert_signed_as_sent(seen: Seen):
    # Recomputed here from what the server actually received, not from what the client meant.
    expected = hmac.new(
        SECRET,
        seen.headers["X-Auth-Timestamp"].encode() + seen.path.encode() + seen.body,
        hashlib.sha256,
    ).hexdigest()
    assert seen.headers["X-Auth-Signature"] == expected
    assert seen.headers["X-Auth-Token"] == TOKEN


# --- endpoints ----------------------------------------------------------------------------------


def test_get_cards_sends_a_signed_request_and_returns_typed_cards(finci, make_client):
    finci.replies.append(cards_reply(card_item(), card_item(token_id="tok_456", product_id=7)))
    result = make_client().get_cards(person_id="per_1")
    assert result == CardList(
        items=(
            Card("tok_123", "ADA LOVELACE", "5555-55**-****-4444", "2028-09", "prod_1"),
            Card("tok_456", "ADA LOVELACE", "5555-55**-****-4444", "2028-09", "7"),
        ),
        total=2,
    )
    (seen,) = finci.seen
    assert (seen.method, seen.path) == ("POST", "/v1/get-cards")
    assert seen.body == b'{"person_id":"per_1"}'
    assert seen.headers["X-Auth-Timestamp"] == "1700000000"
    assert seen.headers["Content-Type"] == "application/json"
    assert_signed_as_sent(seen)


def test_get_cards_by_corporate(finci, make_client):
    finci.replies.append(cards_reply())
    assert make_client().get_cards(corporate_id=42) == CardList(items=(), total=0)
    assert finci.seen[0].body == b'{"corporate_id":42}'


@pytest.mark.parametrize(
    "kwargs", [{}, {"person_id": "p", "corporate_id": "c"}, {"person_id": True}, {"person_id": 1.5}]
)
def test_get_cards_needs_exactly_one_owner(finci, make_client, kwargs):
    with pytest.raises(ValueError):
        make_client().get_cards(**kwargs)
    assert finci.seen == []


def test_update_card_status_patches_the_quoted_token_path(finci, make_client):
    make_client().update_card_status("tok_123", contract.TokenStatus.DEACTIVATED)
    (seen,) = finci.seen
    assert (seen.method, seen.path) == ("PATCH", "/v1/update-card-status/tok_123")
    assert seen.body == b'{"token_status":"deactivated"}'
    # Same inputs as the fixed vector, so this is the vector on the wire.
    assert seen.headers["X-Auth-Signature"] == STATUS_VECTOR


def test_update_card_stage_patches_the_stage(finci, make_client):
    make_client().update_card_stage("tok_123", "plastic_not_delivered")
    (seen,) = finci.seen
    assert (seen.method, seen.path) == ("PATCH", "/v1/update-card-stage/tok_123")
    assert seen.body == b'{"token_stage":"plastic_not_delivered"}'
    assert_signed_as_sent(seen)


def test_token_id_is_percent_quoted_and_the_quoted_path_is_what_is_signed(finci, make_client):
    make_client().update_card_status("tok/../x?y#z%", "lost")
    (seen,) = finci.seen
    assert seen.path == "/v1/update-card-status/tok%2F..%2Fx%3Fy%23z%25"
    assert_signed_as_sent(seen)


@pytest.mark.parametrize("token_id", ["", ".", "..", "tok\n1", "tok 1", "tök", "t" * 65, None, 5])
def test_unsafe_token_ids_are_refused_before_any_request(finci, make_client, token_id):
    with pytest.raises(ValueError):
        make_client().update_card_status(token_id, "active")
    assert finci.seen == []


def test_unknown_status_or_unrequestable_stage_is_refused_before_any_request(finci, make_client):
    client = make_client()
    with pytest.raises(ValueError):
        client.update_card_status("tok_1", "compromised")
    with pytest.raises(ValueError):
        client.update_card_stage("tok_1", "plastic_delivered")
    assert finci.seen == []


def test_base_url_path_prefix_is_part_of_the_signed_path(finci, make_client):
    finci.replies.append(cards_reply())
    make_client(base_url=finci.url + "/api/").get_cards(person_id="p")
    (seen,) = finci.seen
    assert seen.path == "/api/v1/get-cards"
    assert_signed_as_sent(seen)


# --- retries ------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_retryable_statuses_are_retried_then_succeed(finci, make_client, sleeps, status):
    finci.replies += [Reply(status=status, body=b"busy"), Reply(status=status), cards_reply()]
    assert make_client().get_cards(person_id="p").total == 0
    assert len(finci.seen) == 3
    assert len(sleeps) == 2


def test_backoff_grows_exponentially_with_jitter(finci, make_client, sleeps):
    finci.replies += [Reply(status=503)] * 5
    with pytest.raises(CardApiError) as caught:
        make_client(max_attempts=5, backoff=0.5, max_backoff=3.0).get_cards(person_id="p")
    assert caught.value.kind == ErrorKind.HTTP
    assert caught.value.status == 503
    assert caught.value.attempts == 5
    assert len(finci.seen) == 5
    # Equal jitter: each wait lies in [step/2, step], steps 0.5, 1, 2, then capped at 3.
    for wait, step in zip(sleeps, [0.5, 1.0, 2.0, 3.0], strict=True):
        assert step / 2 <= wait <= step
    assert len(set(sleeps)) == 4


def test_retry_after_is_honoured_up_to_the_backoff_cap(finci, make_client, sleeps):
    finci.replies += [Reply(status=429, headers={"Retry-After": "2"}), cards_reply()]
    make_client(max_backoff=5.0).get_cards(person_id="p")
    assert sleeps[0] >= 2
    finci.replies += [Reply(status=429, headers={"Retry-After": "3600"}), cards_reply()]
    make_client(max_backoff=5.0).get_cards(person_id="p")
    assert sleeps[1] <= 5.0


def test_each_attempt_is_signed_with_a_fresh_timestamp(finci, make_client):
    ticks = iter([1700000000.0, 1700000031.0])
    finci.replies += [Reply(status=503), cards_reply()]
    make_client(clock=lambda: next(ticks)).get_cards(person_id="p")
    stamps = [seen.headers["X-Auth-Timestamp"] for seen in finci.seen]
    assert stamps == ["1700000000", "1700000031"]
    for seen in finci.seen:
        assert_signed_as_sent(seen)


def test_exhausted_retries_report_the_envelope_errors(finci, make_client):
    finci.replies += [Reply(status=500, body={"status": "error", "errors": ["internal"]})] * 3
    with pytest.raises(CardApiError) as caught:
        make_client().get_cards(person_id="p")
    assert (caught.value.kind, caught.value.errors, caught.value.attempts) == (
        ErrorKind.HTTP,
        ("internal",),
        3,
    )


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_client_errors_are_not_retried(finci, make_client, sleeps, status):
    finci.replies.append(Reply(status=status, body=b"<html>no</html>"))
    with pytest.raises(CardApiError) as caught:
        make_client().update_card_status("tok_1", "blocked")
    assert (caught.value.kind, caught.value.status) == (ErrorKind.HTTP, status)
    assert len(finci.seen) == 1 and sleeps == []


def test_read_timeout_is_retried(finci, make_client, sleeps):
    finci.replies += [Reply(delay=0.6), cards_reply()]
    result = make_client(timeout=(1.0, 0.2)).get_cards(person_id="p")
    assert result.total == 0
    assert len(finci.seen) == 2 and len(sleeps) == 1


def test_persistent_timeouts_end_as_a_transport_error(finci, make_client):
    finci.replies += [Reply(delay=0.4), Reply(delay=0.4)]
    with pytest.raises(CardApiError) as caught:
        make_client(timeout=(1.0, 0.1), max_attempts=2).get_cards(person_id="p")
    assert (caught.value.kind, caught.value.status, caught.value.attempts) == (
        ErrorKind.TRANSPORT,
        None,
        2,
    )


def test_connection_refused_is_retried_then_a_transport_error(make_client, sleeps):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = make_client(base_url=f"http://127.0.0.1:{port}", max_attempts=3)
    with pytest.raises(CardApiError) as caught:
        client.get_cards(person_id="p")
    assert caught.value.kind == ErrorKind.TRANSPORT
    assert caught.value.attempts == 3
    assert len(sleeps) == 2
    # Nothing chained: a requests exception carries the prepared request and its headers.
    assert caught.value.__cause__ is None and caught.value.__context__ is None


def test_redirects_are_never_followed(finci, make_client):
    finci.replies.append(Reply(status=302, headers={"Location": "http://evil.example/steal"}))
    with pytest.raises(CardApiError) as caught:
        make_client().get_cards(person_id="p")
    assert (caught.value.kind, caught.value.status) == (ErrorKind.HTTP, 302)
    assert len(finci.seen) == 1


# --- envelopes ----------------------------------------------------------------------------------


def test_error_envelope_is_rejected_with_its_codes_and_not_retried(finci, make_client, sleeps):
    finci.replies.append(Reply(body={"status": "error", "errors": ["card_not_found", "x y\nz"]}))
    with pytest.raises(CardApiError) as caught:
        make_client().update_card_status("tok_1", "blocked")
    assert caught.value.kind == ErrorKind.REJECTED
    assert caught.value.errors == ("card_not_found", "<unrecognised>")
    assert caught.value.status == 200
    assert sleeps == []


def test_error_envelope_on_a_client_error_status_is_a_rejection(finci, make_client):
    finci.replies.append(Reply(status=422, body={"status": "error", "errors": ["invalid_status"]}))
    with pytest.raises(CardApiError) as caught:
        make_client().update_card_status("tok_1", "blocked")
    assert (caught.value.kind, caught.value.errors, caught.value.status) == (
        ErrorKind.REJECTED,
        ("invalid_status",),
        422,
    )


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"errors":[]}',
        b'{"status":"ok"}',
        b'{"status":"success","errors":"none"}',
        b'{"status":NaN}',
        b"\xff",
    ],
)
def test_success_status_without_a_valid_envelope_is_malformed(finci, make_client, body):
    finci.replies.append(Reply(body=body))
    with pytest.raises(CardApiError) as caught:
        make_client().update_card_status("tok_1", "blocked")
    assert caught.value.kind == ErrorKind.MALFORMED


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (Reply(body={"status": "success", "total": 0}), "items"),
        (Reply(body={"status": "success", "items": [], "total": True}), "total"),
        (Reply(body={"status": "success", "items": [], "total": -1}), "total"),
        (cards_reply("card"), "items[0].item"),
        (cards_reply(card_item(token_id="")), "items[0].token_id"),
        (cards_reply(card_item(embossing_name=None)), "items[0].embossing_name"),
        (cards_reply(card_item(), card_item(card_number="n/a")), "items[1].card_number"),
        (cards_reply(card_item(card_number=4111111111111111)), "items[0].card_number"),
        (cards_reply(card_item(expiration_date="09/28")), "items[0].expiration_date"),
        (cards_reply(card_item(product_id=None)), "items[0].product_id"),
    ],
)
def test_card_lists_not_in_the_documented_shape_are_malformed(finci, make_client, reply, error):
    finci.replies.append(reply)
    with pytest.raises(CardApiError) as caught:
        make_client().get_cards(person_id="p")
    assert caught.value.kind == ErrorKind.MALFORMED
    assert caught.value.errors == (error,)


def test_unmasked_card_number_from_finci_is_masked_and_flagged(finci, make_client):
    finci.replies.append(cards_reply(card_item(card_number=VISA_TEST), card_item()))
    result = make_client().get_cards(person_id="p")
    assert result.items[0].card_number == "4111-11**-****-1111"
    assert result.items[0].card_number_exposed
    assert not result.items[1].card_number_exposed
    assert result.card_number_exposed
    assert VISA_TEST not in repr(result)


def test_card_data_never_reaches_an_error_message(finci, make_client):
    finci.replies.append(cards_reply(card_item(card_number=f"{VISA_TEST}!")))
    with pytest.raises(CardApiError) as caught:
        make_client().get_cards(person_id="p")
    assert VISA_TEST not in str(caught.value) and VISA_TEST not in repr(caught.value)


# --- credentials never leak ---------------------------------------------------------------------


def test_token_and_secret_never_appear_in_reprs_or_errors(finci, make_client):
    client = make_client()
    echoed = {"status": "error", "errors": [TOKEN, SECRET.decode(), "ok_code"]}
    finci.replies.append(Reply(status=400, body=echoed))
    with pytest.raises(CardApiError) as caught:
        client.update_card_status("tok_1", "blocked")
    assert caught.value.errors == ("<redacted>", "<redacted>", "ok_code")
    for text in (repr(client), str(client), str(caught.value), repr(caught.value)):
        assert TOKEN not in text
        assert SECRET.decode() not in text


def test_client_cannot_be_pickled(make_client):
    with pytest.raises(TypeError):
        pickle.dumps(make_client())


@pytest.mark.parametrize(
    "base_url",
    [
        "http://finci.example",  # plain HTTP without the explicit test opt-in
        "ftp://finci.example",
        "https://user:pw@finci.example",
        "https://finci.example/?x=1",
        "https://finci.example/#f",
        "https:///v1",
        "finci.example",
    ],
)
def test_base_url_must_be_plain_https(base_url):
    with pytest.raises(ValueError) as caught:
        CardApiClient(base_url, TOKEN, SECRET)
    assert "pw" not in str(caught.value)


@pytest.mark.parametrize("token", ["", "tok en", "tok\r\nX-Evil: 1", "tök"])
def test_token_must_be_header_safe_and_is_not_echoed(token):
    with pytest.raises(ValueError) as caught:
        CardApiClient("https://finci.example", token, SECRET)
    assert not token or token not in str(caught.value)


def test_secret_and_attempts_are_validated():
    with pytest.raises(ValueError):
        CardApiClient("https://finci.example", TOKEN, b"")
    with pytest.raises(ValueError):
        CardApiClient("https://finci.example", TOKEN, SECRET, max_attempts=0)


def test_string_secret_is_used_as_utf8_bytes(finci, make_client):
    client = CardApiClient(
        finci.url, TOKEN, SECRET.decode(), allow_http=True, clock=lambda: 1700000000.0
    )
    try:
        client.update_card_status("tok_123", "deactivated")
    finally:
        client.close()
    assert finci.seen[0].headers["X-Auth-Signature"] == STATUS_VECTOR


def test_injected_session_is_used_and_left_open(finci):
    session = requests.Session()
    try:
        with CardApiClient(finci.url, TOKEN, SECRET, session=session, allow_http=True) as client:
            client.update_card_status("tok_1", "active")
        # Still usable: closing the client must not close a session it does not own.
        assert session.get(finci.url + "/ping", timeout=2).status_code == 200
    finally:
        session.close()


# --- "last used" for the token and secret ------------------------------------------------------


@pytest.mark.parametrize(("replies", "accepted"), [
    ([Reply()], 1),
    # FINCI read the signed request and answered in its own envelope: the credentials worked.
    ([Reply(404, {"status": "error", "errors": ["card_not_found"]})], 1),
    ([Reply(401, {"status": "error", "errors": ["unauthorized"]})], 0),
    ([Reply(403, {"status": "error", "errors": ["forbidden"]})], 0),
    ([Reply(404, b"<html>not found</html>")], 0),  # not FINCI answering (a proxy, a wrong URL)
    ([Reply(503)] * 3, 0),
    ([Reply(503), Reply()], 1),
])
def test_on_accepted_fires_only_when_finci_accepted_the_credentials(finci, make_client,
                                                                     replies, accepted):
    finci.replies.extend(replies)
    calls = []
    client = make_client(on_accepted=lambda: calls.append(1))
    with contextlib.suppress(CardApiError):
        client.update_card_status("tok_1", "deactivated")
    assert len(calls) == accepted
