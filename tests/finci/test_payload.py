import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from console.finci import contract
from console.finci.payload import (
    SCHEMA,
    PayloadReason,
    PayloadRejected,
    WebhookMessage,
    parse_message,
    parse_timestamp,
)

# Well-known test card numbers, planted where real card data could leak from (merchant names,
# unknown fields) to show it never reaches an exception message or a repr.
VISA_TEST = "4111111111111111"
MC_TEST = "5555555555554444"

REPO = Path(__file__).resolve().parents[2]
SHARED_SCHEMA = REPO.parent / "shared" / "finci-webhook.schema.json"
PACKAGED_SCHEMA = REPO / "console" / "finci" / "webhook.schema.json"


def auth_request(**overrides):
    message = {
        "type": "authorization",
        "id": "auth_0001",
        "created_at": "2025-03-01T12:00:00Z",
        "advice": False,
        "token_id": "tok_123",
        "amount": 1250,
        "currency": "EUR",
        "merchant": {"name": f"Cafe {VISA_TEST}", "mcc": "5812", "country": "DE"},
    }
    message.update(overrides)
    return message


def auth_advice(**overrides):
    return auth_request(**{"advice": True, "response_code": "Approved", **overrides})


def lifecycle(kind, **overrides):
    message = {
        "type": kind,
        "id": f"{kind}_0001",
        "created_at": "2025-03-02T08:30:00.123456Z",
        "token_id": "tok_123",
        "amount": 1250,
        "currency": "EUR",
        "authorization_id": "auth_0001",
        "merchant": {"name": f"Shop {MC_TEST}", "mcc": "5411", "country": "FR"},
    }
    message.update(overrides)
    return message


def card_status(**overrides):
    message = {
        "type": "card_status",
        "id": "cs_0001",
        "created_at": "2025-03-03T00:00:00+00:00",
        "token_id": "tok_123",
        "token_status": "compromized",
        "token_stage": "plastic_delivered",
    }
    message.update(overrides)
    return message


def encode(message) -> bytes:
    return json.dumps(message).encode()


def without(message, *keys):
    return {k: v for k, v in message.items() if k not in keys}


def rejected(body: bytes) -> PayloadRejected:
    with pytest.raises(PayloadRejected) as caught:
        parse_message(body)
    return caught.value


# --- the schema copy ----------------------------------------------------------------------------


@pytest.mark.skipif(not SHARED_SCHEMA.exists(), reason="shared contract folder not present")
def test_packaged_schema_is_identical_to_the_shared_contract():
    assert PACKAGED_SCHEMA.read_bytes() == SHARED_SCHEMA.read_bytes()


def test_schema_enums_match_the_contract_constants():
    props = SCHEMA["properties"]
    assert props["type"]["enum"] == [t.value for t in contract.MessageType]
    assert props["token_status"]["enum"] == [s.value for s in contract.TokenStatus]
    assert props["token_stage"]["enum"] == [s.value for s in contract.TokenStage]


# --- authorizations -----------------------------------------------------------------------------


def test_authorization_request_is_parsed_and_typed():
    message = parse_message(encode(auth_request()))
    assert message == WebhookMessage(
        type="authorization",
        known_type=True,
        id="auth_0001",
        created_at=datetime(2025, 3, 1, 12, 0, tzinfo=UTC),
        raw={},
        advice=False,
        token_id="tok_123",
        amount=1250,
        currency="EUR",
    )
    assert message.is_authorization_request
    assert not message.is_advice
    assert message.response_code is None
    assert message.merchant == {"name": f"Cafe {VISA_TEST}", "mcc": "5812", "country": "DE"}
    assert message.business_key == ("authorization", "auth_0001", False)


def test_advice_shares_the_id_but_not_the_business_key_of_its_request():
    request = parse_message(encode(auth_request()))
    advice = parse_message(encode(auth_advice()))
    assert advice.id == request.id
    assert advice.business_key == ("authorization", "auth_0001", True)
    assert advice.business_key != request.business_key
    assert advice.is_advice and not advice.is_authorization_request
    assert advice.response_code == "Approved"


def test_advice_response_code_is_an_open_set():
    message = parse_message(encode(auth_advice(response_code="DoNotHonour")))
    assert message.response_code == "DoNotHonour"


def test_advice_without_response_code_is_rejected():
    error = rejected(encode(without(auth_advice(), "response_code")))
    assert error.reason == PayloadReason.SCHEMA_VIOLATION
    assert error.detail == "response_code: required"


def test_request_carrying_a_response_code_is_rejected():
    error = rejected(encode(auth_request(response_code="Approved")))
    assert error.detail == "response_code: not allowed here"


@pytest.mark.parametrize("field", ["advice", "token_id", "amount", "currency"])
def test_authorization_without_a_required_field_is_rejected(field):
    error = rejected(encode(without(auth_request(), field)))
    assert error.reason == PayloadReason.SCHEMA_VIOLATION
    assert error.detail == f"{field}: required"


@pytest.mark.parametrize("advice", [0, 1, "false", None])
def test_advice_must_be_a_real_boolean(advice):
    assert rejected(encode(auth_request(advice=advice))).detail == "advice: type"


# --- amounts ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("literal", "detail"),
    [
        (b"12.0", "amount: type"),  # JSON Schema would call 12.0 an integer
        (b"12.5", "amount: type"),
        (b"1.25e3", "amount: type"),
        (b"true", "amount: type"),  # Python would call True an integer
        (b"false", "amount: type"),
        (b'"1250"', "amount: type"),
        (b"null", "amount: type"),
        (b"-1", "amount: minimum"),
        (str(2**63).encode(), "amount: maximum"),
        (str(contract.AMOUNT_MAX_MINOR_UNITS + 1).encode(), "amount: maximum"),
        (str(2**63 - 1).encode(), "amount: maximum"),  # storable, but overflowed when posted
    ],
)
def test_amount_must_be_a_non_negative_integer_in_minor_units(literal, detail):
    body = encode(auth_request(amount=999)).replace(b"999", literal)
    error = rejected(body)
    assert error.reason == PayloadReason.SCHEMA_VIOLATION
    assert error.detail == detail


def test_the_largest_amount_the_contract_allows_is_accepted():
    top = contract.AMOUNT_MAX_MINOR_UNITS
    assert top == 999_999_999_999
    assert parse_message(encode(auth_request(amount=top))).amount == top


def test_zero_amount_is_accepted():
    assert parse_message(encode(auth_request(amount=0))).amount == 0


@pytest.mark.parametrize("currency", ["eur", "EU", "EURO", "EUR\n", "€UR", VISA_TEST])
def test_currency_must_be_three_upper_case_letters(currency):
    error = rejected(encode(auth_request(currency=currency)))
    assert error.detail == "currency: pattern"
    assert VISA_TEST not in str(error)


@pytest.mark.parametrize(
    ("merchant", "detail"),
    [
        ({"mcc": "541"}, "merchant.mcc: pattern"),
        ({"mcc": "5411\n"}, "merchant.mcc: pattern"),
        ({"mcc": 5411}, "merchant.mcc: type"),
        ({"country": "de"}, "merchant.country: pattern"),
        ({"name": "x" * 201}, "merchant.name: maxLength"),
        ("Cafe", "merchant: type"),
    ],
)
def test_merchant_fields_are_checked(merchant, detail):
    assert rejected(encode(auth_request(merchant=merchant))).detail == detail


# --- lifecycle messages -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["reversal", "presentment", "refund"])
def test_lifecycle_message_is_parsed_with_its_authorization_link(kind):
    message = parse_message(encode(lifecycle(kind)))
    assert message.type == kind and message.known_type
    assert message.authorization_id == "auth_0001"
    assert message.amount == 1250 and message.currency == "EUR"
    assert message.created_at == datetime(2025, 3, 2, 8, 30, 0, 123456, tzinfo=UTC)
    assert message.business_key == (kind, f"{kind}_0001", None)
    assert not message.is_authorization_request and not message.is_advice


def test_presentment_without_a_preceding_authorization_is_accepted():
    message = parse_message(encode(without(lifecycle("presentment"), "authorization_id")))
    assert message.authorization_id is None


def test_advice_field_on_a_non_authorization_does_not_enter_its_business_key():
    message = parse_message(encode(lifecycle("refund", advice=True)))
    assert message.business_key == ("refund", "refund_0001", None)


@pytest.mark.parametrize("kind", ["reversal", "presentment", "refund"])
@pytest.mark.parametrize("field", ["token_id", "amount", "currency"])
def test_lifecycle_message_without_a_required_field_is_rejected(kind, field):
    assert rejected(encode(without(lifecycle(kind), field))).detail == f"{field}: required"


def test_card_status_message_is_parsed_into_contract_enums():
    message = parse_message(encode(card_status()))
    assert message.token_status is contract.TokenStatus.COMPROMIZED
    assert message.token_stage is contract.TokenStage.PLASTIC_DELIVERED
    assert message.amount is None


def test_card_status_stage_is_optional():
    assert parse_message(encode(without(card_status(), "token_stage"))).token_stage is None


@pytest.mark.parametrize(
    ("overrides", "detail"),
    [
        ({"token_status": "compromised"}, "token_status: enum"),  # the English spelling
        ({"token_status": "ACTIVE"}, "token_status: enum"),
        ({"token_stage": "delivered"}, "token_stage: enum"),
    ],
)
def test_card_status_values_outside_the_contract_are_rejected(overrides, detail):
    assert rejected(encode(card_status(**overrides))).detail == detail


def test_card_status_without_token_status_is_rejected():
    assert rejected(encode(without(card_status(), "token_status"))).detail == (
        "token_status: required"
    )


# --- identity and times -------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["type", "id", "created_at"])
def test_message_without_identity_or_time_is_rejected(field):
    assert rejected(encode(without(card_status(), field))).detail == f"{field}: required"


@pytest.mark.parametrize(("value", "detail"), [("", "id: minLength"), ("x" * 65, "id: maxLength")])
def test_id_length_is_bounded(value, detail):
    assert rejected(encode(card_status(id=value))).detail == detail


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-03-01T12:00:00Z", datetime(2025, 3, 1, 12, tzinfo=UTC)),
        ("2025-03-01t12:00:00z", datetime(2025, 3, 1, 12, tzinfo=UTC)),
        ("2025-03-01T14:00:00+02:00", datetime(2025, 3, 1, 12, tzinfo=UTC)),
        ("2025-03-01T07:30:00-04:30", datetime(2025, 3, 1, 12, tzinfo=UTC)),
        ("2025-03-01T12:00:00-00:00", datetime(2025, 3, 1, 12, tzinfo=UTC)),
        ("2025-03-01T12:00:00.5Z", datetime(2025, 3, 1, 12, 0, 0, 500000, tzinfo=UTC)),
        ("2025-03-01T12:00:00.123456789Z", datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)),
        ("2024-02-29T23:59:59Z", datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC)),
        ("2025-01-01T00:30:00+01:00", datetime(2024, 12, 31, 23, 30, tzinfo=UTC)),
    ],
)
def test_created_at_is_normalised_to_aware_utc(text, expected):
    parsed = parse_timestamp(text)
    assert parsed == expected
    assert parsed.utcoffset().total_seconds() == 0
    assert parse_message(encode(card_status(created_at=text))).created_at == expected


@pytest.mark.parametrize(
    "text",
    [
        "2025-03-01T12:00:00",  # naive: whose local time?
        "2025-03-01 12:00:00Z",
        "2025-03-01",
        "2025-03-01T12:00Z",
        "2025-03-01T12:00:00.Z",
        "2025-03-01T12:00:00.1234567890Z",
        "2025-03-01T12:00:00+0200",
        "2025-03-01T12:00:00+24:00",
        "2025-03-01T12:00:00+02:60",
        "2025-02-29T12:00:00Z",
        "2025-13-01T12:00:00Z",
        "2025-03-01T24:00:00Z",
        "2016-12-31T23:59:60Z",  # leap second: datetime cannot hold it
        "0001-01-01T00:00:00+01:00",  # before datetime.min once in UTC
        "9999-12-31T23:59:59-01:00",  # after datetime.max once in UTC
        "\uff12\uff10\uff12\uff15-03-01T12:00:00Z",  # full-width digits
        "2025-03-01T12:00:00Z\n",
        " 2025-03-01T12:00:00Z",
        "",
    ],
)
def test_created_at_that_is_not_strict_rfc3339_with_offset_is_rejected(text):
    with pytest.raises(ValueError):
        parse_timestamp(text)
    error = rejected(encode(card_status(created_at=text)))
    assert error.detail == "created_at: format"


def test_created_at_must_be_a_string():
    assert rejected(encode(card_status(created_at=1740830400))).detail == "created_at: type"
    with pytest.raises(ValueError):
        parse_timestamp(1740830400)  # type: ignore[arg-type]


# --- unknown fields and types -------------------------------------------------------------------


def test_unknown_fields_are_kept_in_raw():
    message = parse_message(
        encode(auth_request(network={"trace": ["a", 1, None]}, merchant={"name": "X", "city": "Y"}))
    )
    assert message.raw["network"] == {"trace": ["a", 1, None]}
    assert message.merchant == {"name": "X", "city": "Y"}


def test_unknown_type_is_accepted_and_flagged_for_parking():
    body = {
        "type": "dispute",
        "id": "dsp_1",
        "created_at": "2025-03-04T10:00:00Z",
        "amount": {"value": "12.50", "currency": "EUR"},  # a shape we could not type
        "advice": "maybe",
        "pan_hint": VISA_TEST,
    }
    message = parse_message(encode(body))
    assert message.known_type is False
    assert message.type == "dispute"
    assert message.amount is None and message.advice is None and message.token_id is None
    assert message.raw == body
    assert message.business_key == ("dispute", "dsp_1", None)
    assert not message.is_authorization_request and not message.is_advice


def test_known_type_in_another_case_is_parked_not_processed():
    message = parse_message(encode(auth_request(type="Authorization")))
    assert message.known_type is False
    assert message.advice is None


@pytest.mark.parametrize(
    ("overrides", "detail"),
    [
        ({"type": "dispute\nFAKE LOG LINE"}, "type: pattern"),
        ({"type": ""}, "type: pattern"),
        ({"type": "x" * 65}, "type: pattern"),
        ({"type": 7}, "type: type"),
        ({"type": None}, "type: type"),
        ({"id": ""}, "id: minLength"),
        ({"created_at": "yesterday"}, "created_at: format"),
    ],
)
def test_unknown_type_still_needs_a_safe_name_an_id_and_a_time(overrides, detail):
    body = {"type": "dispute", "id": "dsp_1", "created_at": "2025-03-04T10:00:00Z"}
    body.update(overrides)
    assert rejected(encode(body)).detail == detail


# --- hostile encodings --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", PayloadReason.NOT_JSON),
        (b"   ", PayloadReason.NOT_JSON),
        (b"{", PayloadReason.NOT_JSON),
        (b"{'type': 'authorization'}", PayloadReason.NOT_JSON),
        (b'{"a":1} {"b":2}', PayloadReason.NOT_JSON),
        (b"\xef\xbb\xbf{}", PayloadReason.NOT_JSON),  # byte order mark
        (b"\xff\xfe{\x00}\x00", PayloadReason.NOT_UTF8),
        (b'{"name":"caf\xe9"}', PayloadReason.NOT_UTF8),
        (b'{"name":"\xed\xa0\x80"}', PayloadReason.NOT_UTF8),  # encoded surrogate
        (b"[]", PayloadReason.NOT_OBJECT),
        (b'"authorization"', PayloadReason.NOT_OBJECT),
        (b"42", PayloadReason.NOT_OBJECT),
        (b"null", PayloadReason.NOT_OBJECT),
        (b'{"amount":NaN}', PayloadReason.NON_FINITE_NUMBER),
        (b'{"amount":Infinity}', PayloadReason.NON_FINITE_NUMBER),
        (b'{"amount":-Infinity}', PayloadReason.NON_FINITE_NUMBER),
        (b'{"x":1e999}', PayloadReason.NON_FINITE_NUMBER),
        (b'{"x":' + b"9" * 5000 + b"}", PayloadReason.NUMBER_TOO_LONG),
        (b'{"x":0.' + b"1" * 200 + b"}", PayloadReason.NUMBER_TOO_LONG),
        (b'{"x":"a\\u0000b"}', PayloadReason.FORBIDDEN_CHARACTER),
        (b'{"a\\u0000":1}', PayloadReason.FORBIDDEN_CHARACTER),
        (b'{"x":"\\ud800"}', PayloadReason.FORBIDDEN_CHARACTER),  # lone surrogate escape
        (b'{"x":' + b"[" * 40 + b"]" * 40 + b"}", PayloadReason.TOO_DEEP),
        (b"[" * 100_000 + b"]" * 100_000, PayloadReason.TOO_DEEP),
        (b'{"a":' * 40_000 + b"1" + b"}" * 40_000, PayloadReason.TOO_DEEP),
    ],
)
def test_hostile_encodings_are_rejected_with_a_reason(body, reason):
    assert rejected(body).reason == reason


def test_nesting_up_to_the_limit_is_accepted_in_unknown_fields():
    depth = contract.WEBHOOK_MAX_JSON_DEPTH - 1
    nested = b'{"x":' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"
    document = auth_request()
    body = encode(document)[:-1] + b', "deep": ' + nested + b"}"
    assert parse_message(body).raw["deep"]["x"] == json.loads(nested)["x"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"type":"authorization","type":"refund"}',
        b'{"id":"a","merchant":{"name":"x","name":"y"}}',
        b'{"a":[{"k":1,"k":1}]}',  # identical values are still ambiguous to other parsers
    ],
)
def test_duplicate_keys_are_rejected_at_any_depth(body):
    assert rejected(body).reason == PayloadReason.DUPLICATE_KEY


def test_duplicate_key_detail_hides_keys_that_are_not_plain_names():
    body = f'{{"{VISA_TEST} x":1,"{VISA_TEST} x":2}}'.encode()
    error = rejected(body)
    assert error.detail == "<field>"
    assert VISA_TEST not in str(error)


def test_oversized_body_is_rejected_before_decoding():
    body = b" " * (contract.WEBHOOK_MAX_BODY_BYTES + 1)
    assert rejected(body).reason == PayloadReason.TOO_LARGE


def test_text_instead_of_bytes_is_rejected():
    assert rejected(json.dumps(auth_request())).reason == PayloadReason.NOT_BYTES  # type: ignore[arg-type]


def test_bytearray_and_memoryview_bodies_are_accepted():
    body = encode(auth_request())
    assert parse_message(bytearray(body)).id == "auth_0001"
    assert parse_message(memoryview(body)).id == "auth_0001"


def test_whitespace_and_unicode_escapes_are_ordinary_json():
    body = b' \n{ "type" : "card_status", "id":"cs_\\u0031", "created_at":"2025-03-03T00:00:00Z",'
    body += b' "token_id":"tok", "token_status":"active" } \n'
    assert parse_message(body).id == "cs_1"


# --- no card data in messages or reprs ----------------------------------------------------------


def test_rejection_detail_names_the_field_but_never_its_value():
    for body in (
        encode(auth_request(token_id=VISA_TEST * 5)),
        encode(auth_request(amount=VISA_TEST)),
        encode(card_status(token_status=MC_TEST)),
        encode(auth_request(merchant={"name": VISA_TEST * 20})),
        encode(card_status(created_at=MC_TEST)),
    ):
        error = rejected(body)
        assert error.reason == PayloadReason.SCHEMA_VIOLATION
        assert VISA_TEST not in str(error) and MC_TEST not in str(error)
        assert VISA_TEST not in error.detail and MC_TEST not in error.detail


def test_message_repr_shows_identity_but_no_merchant_or_unknown_fields():
    message = parse_message(encode(auth_request(extra_pan=MC_TEST)))
    text = repr(message)
    assert "auth_0001" in text
    assert VISA_TEST not in text and MC_TEST not in text


# --- fuzz ---------------------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
field_values = st.one_of(
    json_values,
    st.sampled_from(
        [
            "authorization",
            "card_status",
            "refund",
            "2025-03-01T12:00:00Z",
            "2025-03-01T12:00:00",
            "EUR",
            True,
            False,
            0,
            -1,
            2**63,
            12.0,
            VISA_TEST,
        ]
    ),
)
field_names = st.sampled_from(
    [*SCHEMA["properties"], "merchant", "extra", "type", "id", "created_at"]
)


def assert_message_or_rejected(body):
    try:
        message = parse_message(body)
    except PayloadRejected as error:
        assert isinstance(error.reason, PayloadReason)
    else:
        assert isinstance(message, WebhookMessage)
        assert message.created_at.tzinfo is UTC
        if message.known_type:
            assert message.amount is None or type(message.amount) is int


# Hypothesis' own generation dominates the cost here; these counts keep the whole finci suite
# well under 20 s while still trying well over a thousand bodies.
@settings(max_examples=800, deadline=None, database=None)
@given(st.one_of(st.binary(max_size=300), json_values.map(lambda v: json.dumps(v).encode())))
def test_fuzzed_bodies_only_ever_raise_payload_rejected(body):
    assert_message_or_rejected(body)


@settings(max_examples=600, deadline=None, database=None)
@given(
    base=st.sampled_from(
        [auth_request(), auth_advice(), lifecycle("refund"), lifecycle("reversal"), card_status()]
    ),
    changes=st.dictionaries(field_names, field_values, max_size=4),
    drop=st.lists(field_names, max_size=2),
)
def test_mutated_messages_only_ever_raise_payload_rejected(base, changes, drop):
    message = without(base, *drop)
    message.update(changes)
    assert_message_or_rejected(encode(message))
