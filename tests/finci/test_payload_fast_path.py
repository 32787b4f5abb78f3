"""The compiled fast path may only ever say "valid" where the authoritative validator agrees."""

from hypothesis import given, settings
from hypothesis import strategies as st

from console.finci import payload

VALID = {"type": "authorization", "id": "auth_1", "created_at": "2026-11-27T08:00:00Z",
         "token_id": "tok_1", "amount": 1250, "currency": "EUR", "advice": False,
         "merchant": {"name": "Shop 4111111111111111", "mcc": "5411", "country": "DE"}}

values = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**20),
                   st.floats(allow_nan=False, allow_infinity=False),
                   st.text(max_size=12), st.sampled_from(["EUR\n", "EUR", "5411\n", "DE", "1.0",
                                                          "2026-11-27T08:00:00",
                                                          "2026-11-27T08:00:00+01:00",
                                                          "authorization", "card_status",
                                                          "active", "compromized", "Approved"]),
                   st.dictionaries(st.sampled_from(["name", "mcc", "country", "x"]),
                                   st.text(max_size=6), max_size=3))
fields = st.sampled_from(["type", "id", "created_at", "token_id", "amount", "currency", "advice",
                          "response_code", "authorization_id", "token_status", "token_stage",
                          "merchant", "extra"])


def _known(document) -> bool:
    return isinstance(document.get("type"), str) and document["type"] in payload._KNOWN_TYPES


def _authoritative_errors(document):
    validator = payload._KNOWN_VALIDATOR if _known(document) else payload._UNKNOWN_VALIDATOR
    return list(validator.iter_errors(document))


@settings(max_examples=1500, deadline=None)
@given(st.dictionaries(fields, values, max_size=6), st.lists(fields, max_size=3))
def test_fast_path_never_accepts_what_the_authoritative_validator_refuses(changes, removed):
    document = {**VALID, **changes}
    for name in removed:
        document.pop(name, None)
    fast = payload._FAST_KNOWN if _known(document) else payload._FAST_UNKNOWN
    if payload._fast_valid(fast, document):
        assert _authoritative_errors(document) == []


def test_strict_cases_the_compiled_validator_alone_would_accept_are_still_refused():
    for bad in ({"amount": 1.0}, {"amount": True}, {"currency": "EUR\n"},
                {"merchant": {"mcc": "5411\n"}}):
        document = {**VALID, **bad}
        assert not payload._fast_valid(payload._FAST_KNOWN, document)
        assert _authoritative_errors(document)
