import base64
import hashlib
import hmac
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from console.finci import contract
from console.finci.webhook_signature import (
    InvalidWebhookSecret,
    RejectReason,
    SignatureRejected,
    VerifiedBy,
    WebhookSecret,
    sign,
    signed_headers,
    verify,
)

# The Standard Webhooks reference vector (QUALITY.md, "Webhook ingress").
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = "1614265330"
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
NOW = 1614265330.0

SECRET = WebhookSecret.parse(VECTOR_SECRET)


def reason_of(*args, secrets=(SECRET,), **kwargs) -> RejectReason:
    with pytest.raises(SignatureRejected) as caught:
        verify(secrets, *args, **kwargs)
    return caught.value.reason


def valid_args(**overrides):
    args = {
        "msg_id": VECTOR_ID,
        "timestamp_header": VECTOR_TIMESTAMP,
        "signature_header": VECTOR_SIGNATURE,
        "body": VECTOR_BODY,
        "now": NOW,
    }
    args.update(overrides)
    return args


# --- the reference vector ---------------------------------------------------------------------


def test_reference_vector_verifies():
    result = verify([SECRET], VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_SIGNATURE, VECTOR_BODY, NOW)
    assert result == VerifiedBy(secret_fingerprint=SECRET.fingerprint)


def test_sign_reproduces_the_reference_vector():
    assert sign(SECRET, VECTOR_ID, int(VECTOR_TIMESTAMP), VECTOR_BODY) == VECTOR_SIGNATURE
    assert sign(SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY) == VECTOR_SIGNATURE


def test_signature_is_hmac_sha256_over_id_timestamp_and_raw_body():
    key = base64.b64decode(VECTOR_SECRET.removeprefix("whsec_"))
    content = f"{VECTOR_ID}.{VECTOR_TIMESTAMP}.".encode() + VECTOR_BODY
    expected = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
    assert f"v1,{expected}" == VECTOR_SIGNATURE


def test_headers_may_arrive_as_bytes():
    result = verify(
        [SECRET],
        VECTOR_ID.encode(),
        VECTOR_TIMESTAMP.encode(),
        VECTOR_SIGNATURE.encode(),
        bytearray(VECTOR_BODY),
        NOW,
    )
    assert result.secret_fingerprint == SECRET.fingerprint


def test_signed_headers_round_trip_through_verify():
    secret = WebhookSecret.generate()
    body = b'{"type":"authorization"}'
    headers = signed_headers(secret, "msg_1", 1_700_000_000, body)
    assert set(headers) == set(contract.WEBHOOK_HEADERS)
    verify(
        [secret],
        headers["webhook-id"],
        headers["webhook-timestamp"],
        headers["webhook-signature"],
        body,
        1_700_000_000,
    )


# --- secrets ------------------------------------------------------------------------------------


def test_secret_fingerprint_is_first_eight_hex_of_sha256_of_key():
    key = base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    assert SECRET.fingerprint == hashlib.sha256(key).hexdigest()[:8]
    assert SECRET.label == SECRET.fingerprint


def test_secret_repr_and_str_reveal_no_key_material():
    encoded = VECTOR_SECRET.removeprefix("whsec_")
    key = base64.b64decode(encoded)
    for text in (repr(SECRET), str(SECRET), f"{SECRET}", repr([SECRET])):
        assert encoded not in text
        assert key.hex() not in text
        assert repr(key) not in text
        assert SECRET.fingerprint in text


def test_secret_cannot_be_pickled():
    with pytest.raises(TypeError):
        pickle.dumps(SECRET)


def test_secret_export_round_trips():
    assert SECRET.export() == VECTOR_SECRET
    fresh = WebhookSecret.generate()
    assert WebhookSecret.parse(fresh.export()) == fresh


def test_secrets_compare_by_key():
    assert WebhookSecret.parse(VECTOR_SECRET) == SECRET
    assert WebhookSecret.generate() != SECRET
    assert len({SECRET, WebhookSecret.parse(VECTOR_SECRET)}) == 1


def test_a_secret_never_equals_its_own_text_or_key_bytes():
    # Comparing with a string or raw bytes is a bug in the caller, never a match.
    assert SECRET != VECTOR_SECRET
    key_bytes = base64.b64decode(VECTOR_SECRET.removeprefix("whsec_"))
    assert key_bytes != SECRET
    assert SECRET.__eq__(VECTOR_SECRET) is NotImplemented


def test_a_key_given_as_text_is_refused():
    # A str key would be hashed as whatever encoding someone picked: only bytes are keys.
    with pytest.raises(InvalidWebhookSecret, match="must be bytes"):
        WebhookSecret("k" * 32)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value",
    [
        "",
        "whsec_",
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",  # no prefix
        "whsk_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS",  # bad padding
        "whsec_MfKQ9r8GKYqrTwjU PD8ILPZIo2LaLaSw",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLa-w",  # urlsafe alphabet
        "whsec_c2hvcnQ=",  # decodes to 5 bytes: too short
        "whsec_" + base64.b64encode(b"k" * 65).decode(),  # too long
        "whsec_ÄÖÜ",
    ],
)
def test_malformed_secret_is_refused_without_echoing_it(value):
    with pytest.raises(InvalidWebhookSecret) as caught:
        WebhookSecret.parse(value)
    body = value.removeprefix("whsec_")
    if len(body) > 3:
        assert body not in str(caught.value)


def test_secret_with_surrounding_whitespace_is_accepted():
    # Secret stores and files commonly append a newline.
    assert WebhookSecret.parse(f"  {VECTOR_SECRET}\n") == SECRET


def test_non_string_secret_is_refused():
    with pytest.raises(InvalidWebhookSecret):
        WebhookSecret.parse(b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")  # type: ignore[arg-type]


# --- rotation and environment separation -------------------------------------------------------


def test_either_of_two_rotating_secrets_verifies():
    old, new = WebhookSecret.generate(), WebhookSecret.generate()
    body = b'{"id":"a"}'
    for signer in (old, new):
        signature = sign(signer, "msg_r", 1000, body)
        result = verify([old, new], "msg_r", "1000", signature, body, 1000)
        assert result.secret_fingerprint == signer.fingerprint


def test_header_with_one_signature_per_rotating_secret_verifies():
    old, new = WebhookSecret.generate(), WebhookSecret.generate()
    body = b"{}"
    header = " ".join(sign(s, "msg_r", 1000, body) for s in (old, new))
    assert verify([new], "msg_r", "1000", header, body, 1000).secret_fingerprint == new.fingerprint
    assert verify([old], "msg_r", "1000", header, body, 1000).secret_fingerprint == old.fingerprint


def test_retired_secret_no_longer_verifies():
    old, new = WebhookSecret.generate(), WebhookSecret.generate()
    signature = sign(old, "msg_r", 1000, b"{}")
    assert reason_of("msg_r", "1000", signature, b"{}", 1000, secrets=[new]) == (
        RejectReason.SIGNATURE_MISMATCH
    )


def test_sandbox_and_production_secrets_never_verify_each_other():
    sandbox, production = WebhookSecret.generate(), WebhookSecret.generate()
    body = b'{"type":"authorization"}'
    for signer, verifier in ((sandbox, production), (production, sandbox)):
        signature = sign(signer, "msg_env", 5000, body)
        assert reason_of("msg_env", "5000", signature, body, 5000, secrets=[verifier]) == (
            RejectReason.SIGNATURE_MISMATCH
        )


def test_no_configured_secret_fails_closed():
    assert reason_of(**valid_args(), secrets=[]) == RejectReason.NO_ACTIVE_SECRET


def test_every_candidate_is_compared_with_every_secret(monkeypatch):
    # Stopping at the first match would make timing reveal which secret and which entry matched.
    calls = []
    real = hmac.compare_digest

    def counting(a, b):
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    others = [WebhookSecret.generate(), WebhookSecret.generate()]
    header = " ".join([VECTOR_SIGNATURE, sign(others[0], VECTOR_ID, VECTOR_TIMESTAMP, b"x")])
    verify([SECRET, *others], **valid_args(signature_header=header))
    assert len(calls) == 3 * 2


# --- header negative matrix ---------------------------------------------------------------------


@pytest.mark.parametrize("field", ["msg_id", "timestamp_header", "signature_header"])
@pytest.mark.parametrize("missing", [None, "", b""])
def test_missing_header_is_rejected(field, missing):
    with pytest.raises(SignatureRejected) as caught:
        verify([SECRET], **valid_args(**{field: missing}))
    assert caught.value.reason == RejectReason.MISSING_HEADER
    assert caught.value.header in contract.WEBHOOK_HEADERS


@pytest.mark.parametrize(
    "msg_id",
    [
        "msg with space",
        "msg\ttab",
        "msg\nnewline",
        "msg_ä",
        "x" * (contract.WEBHOOK_ID_MAX_LENGTH + 1),
        b"\xff\xfe",
        12345,
    ],
)
def test_malformed_message_id_is_rejected(msg_id):
    assert reason_of(**valid_args(msg_id=msg_id)) == RejectReason.MALFORMED_ID


def test_message_id_at_maximum_length_is_accepted():
    msg_id = "m" * contract.WEBHOOK_ID_MAX_LENGTH
    signature = sign(SECRET, msg_id, VECTOR_TIMESTAMP, VECTOR_BODY)
    verify([SECRET], **valid_args(msg_id=msg_id, signature_header=signature))


@pytest.mark.parametrize(
    "timestamp",
    [
        "-1614265330",
        "+1614265330",
        "1614265330.0",
        "1614265330.5",
        " 1614265330",
        "1614265330 ",
        "1614265330\n",
        "1_614_265_330",
        "1e9",
        "0x6037",
        "١٦١٤٢٦٥٣٣٠",  # Arabic-Indic digits: int() accepts them
        "1614265330abc",
        "9" * (contract.WEBHOOK_TIMESTAMP_MAX_DIGITS + 1),
        "9" * 5000,  # past int()'s 4300-digit limit
        "NaN",
    ],
)
def test_malformed_timestamp_is_rejected(timestamp):
    assert reason_of(**valid_args(timestamp_header=timestamp)) == RejectReason.MALFORMED_TIMESTAMP


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (-300, None),
        (300, None),
        (0, None),
        (-301, RejectReason.TIMESTAMP_TOO_OLD),
        (301, RejectReason.TIMESTAMP_TOO_NEW),
    ],
)
def test_timestamp_tolerance_is_300_seconds_inclusive_both_ways(offset, expected):
    # The signed timestamp is fixed; moving the injected clock moves the delivery's age.
    now = NOW - offset
    if expected is None:
        verify([SECRET], **valid_args(now=now))
    else:
        assert reason_of(**valid_args(now=now)) == expected


def test_fractional_clock_just_past_the_boundary_is_rejected():
    assert reason_of(**valid_args(now=NOW + 300.001)) == RejectReason.TIMESTAMP_TOO_OLD
    assert reason_of(**valid_args(now=NOW - 300.001)) == RejectReason.TIMESTAMP_TOO_NEW


def test_nan_clock_fails_closed():
    assert reason_of(**valid_args(now=float("nan"))) == RejectReason.TIMESTAMP_TOO_OLD


def test_tolerance_is_checked_before_the_signature():
    # A replayed stale message is refused as stale even though its signature is genuine.
    assert reason_of(**valid_args(now=NOW + 10_000)) == RejectReason.TIMESTAMP_TOO_OLD


@pytest.mark.parametrize(
    "header",
    [
        "v1",
        "v1,",
        ",abc",
        "v1,a,b",
        "v1,abc",
        "v1,!!!!",
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE",  # padding missing
        "v1,g0hM9SsE-OTPJTGt_tmIKtSyZlE3uFJELVlNIOLJ1OE=",  # urlsafe alphabet
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=AAAA",
        "v1," + base64.b64encode(b"x" * 31).decode(),  # wrong digest length
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=\tv1,abc",
        "   ",
        "v1,ä",
        b"v1,\xff",
        VECTOR_SIGNATURE + " v1",  # a genuine entry does not excuse a mangled one
        " ".join([VECTOR_SIGNATURE] * (contract.WEBHOOK_SIGNATURE_MAX_ENTRIES + 1)),
        "v1a," + "A" * contract.WEBHOOK_SIGNATURE_HEADER_MAX_LENGTH,
        ["v1,abc"],
    ],
)
def test_malformed_signature_header_is_rejected(header):
    assert reason_of(**valid_args(signature_header=header)) == RejectReason.MALFORMED_SIGNATURE


@pytest.mark.parametrize(
    "header",
    [
        "v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        "V1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        "v1a,anything v2,else",
    ],
)
def test_header_with_only_unknown_versions_has_no_supported_signature(header):
    assert reason_of(**valid_args(signature_header=header)) == RejectReason.NO_SUPPORTED_SIGNATURE


def test_unknown_version_entries_are_skipped_beside_a_valid_v1():
    header = f"v1a,c29tZXRoaW5n {VECTOR_SIGNATURE}  v2,xyz"
    verify([SECRET], **valid_args(signature_header=header))


@pytest.mark.parametrize(
    "override",
    [
        {"body": VECTOR_BODY + b" "},
        {"body": b'{"test":2432232314}'},
        {"body": b""},
        {"msg_id": "msg_p5jXN8AQM9LWM0D4loKWxJeK"},
        {"timestamp_header": "1614265331"},
        {"signature_header": "v1," + base64.b64encode(b"\0" * 32).decode()},
    ],
)
def test_any_change_to_signed_content_is_a_mismatch(override):
    assert reason_of(**valid_args(**override)) == RejectReason.SIGNATURE_MISMATCH


def test_wrong_secret_is_a_mismatch():
    assert reason_of(**valid_args(), secrets=[WebhookSecret.generate()]) == (
        RejectReason.SIGNATURE_MISMATCH
    )


def test_body_is_verified_as_raw_bytes_never_decoded():
    body = b'{"name":"\xff\xfe not utf-8"}'
    signature = sign(SECRET, VECTOR_ID, VECTOR_TIMESTAMP, body)
    verify([SECRET], **valid_args(body=body, signature_header=signature))


def test_oversized_body_is_rejected_before_hashing():
    body = b" " * (contract.WEBHOOK_MAX_BODY_BYTES + 1)
    assert reason_of(**valid_args(body=body)) == RejectReason.BODY_TOO_LARGE


def test_body_at_the_cap_is_verified():
    body = b" " * contract.WEBHOOK_MAX_BODY_BYTES
    signature = sign(SECRET, VECTOR_ID, VECTOR_TIMESTAMP, body)
    verify([SECRET], **valid_args(body=body, signature_header=signature))


def test_text_body_is_refused():
    assert reason_of(**valid_args(body=VECTOR_BODY.decode())) == RejectReason.BODY_NOT_BYTES


def test_huge_headers_are_rejected_cheaply():
    huge = "a" * 1_000_000
    assert reason_of(**valid_args(msg_id=huge)) == RejectReason.MALFORMED_ID
    assert reason_of(**valid_args(timestamp_header="1" * 1_000_000)) == (
        RejectReason.MALFORMED_TIMESTAMP
    )
    assert reason_of(**valid_args(signature_header="v1," + huge)) == (
        RejectReason.MALFORMED_SIGNATURE
    )


def test_rejection_message_carries_the_code_but_no_input():
    with pytest.raises(SignatureRejected) as caught:
        verify([SECRET], **valid_args(msg_id="4111111111111111 evil"))
    assert str(caught.value) == "webhook signature rejected: malformed_id (webhook-id)"


def test_reason_codes_are_short_stable_strings():
    assert {r.value for r in RejectReason} >= {
        "missing_header",
        "malformed_id",
        "malformed_timestamp",
        "timestamp_too_old",
        "timestamp_too_new",
        "malformed_signature",
        "no_supported_signature",
        "signature_mismatch",
    }


# --- fuzz ---------------------------------------------------------------------------------------

header_values = st.one_of(
    st.none(),
    st.text(max_size=80),
    st.binary(max_size=80),
    st.integers(),
    st.from_regex(r"\A[0-9]{0,14}\Z"),
)

signature_entries = st.builds(
    "{},{}".format,
    st.sampled_from(["v1", "v1a", "v2", "", "V1", "v1 "]),
    st.one_of(
        st.text(alphabet="ABCabc0189+/=,-_ ", max_size=50),
        st.binary(min_size=0, max_size=40).map(lambda b: base64.b64encode(b).decode()),
    ),
)
signature_headers = st.one_of(
    header_values,
    st.lists(signature_entries, max_size=5).map(" ".join),
    st.lists(st.sampled_from(["v1", ",", " ", "a", "=", "v1,", VECTOR_SIGNATURE]), max_size=8).map(
        "".join
    ),
)


OTHER_SECRET = WebhookSecret.generate()
FUZZ = settings(max_examples=1000, deadline=None, database=None)


def assert_only_rejected_or_genuine(msg_id, timestamp, signature, body, now):
    try:
        verify([SECRET, OTHER_SECRET], msg_id, timestamp, signature, body, now)
    except SignatureRejected as rejected:
        assert isinstance(rejected.reason, RejectReason)
    else:
        # Anything accepted must really carry the genuine signature over the genuine content.
        assert (msg_id, timestamp, body) == (VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY)


@FUZZ
@given(
    msg_id=header_values,
    timestamp=header_values,
    signature=header_values,
    body=st.binary(max_size=100),
    now=st.one_of(st.floats(allow_nan=True), st.integers(-(2**40), 2**40)),
)
def test_fuzzed_headers_only_ever_raise_signature_rejected(msg_id, timestamp, signature, body, now):
    assert_only_rejected_or_genuine(msg_id, timestamp, signature, body, now)


@FUZZ
@given(
    signature=signature_headers,
    body=st.one_of(st.just(VECTOR_BODY), st.binary(max_size=40)),
    skew=st.integers(-400, 400),
)
def test_fuzzed_signature_headers_on_fresh_messages_only_raise_signature_rejected(
    signature, body, skew
):
    assert_only_rejected_or_genuine(VECTOR_ID, VECTOR_TIMESTAMP, signature, body, NOW + skew)
