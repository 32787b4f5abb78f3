"""The compiled fast path may only ever say "valid" where the authoritative validator agrees."""

import fastjsonschema
import pytest
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


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
              st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=6),
              st.sampled_from(["\x00", "a\ud800b", "\udfff", "{[", "\\", "\u2028"])),
    lambda children: st.one_of(st.lists(children, max_size=3),
                               st.dictionaries(st.text(max_size=4), children, max_size=3)),
    max_leaves=40)


@settings(max_examples=1500, deadline=None)
@given(st.one_of(json_values, st.dictionaries(st.text(max_size=4), json_values, max_size=4)),
       st.booleans())
def test_the_structure_walk_is_skipped_only_where_it_could_not_fail(document, ascii_only):
    import json

    # Bodies arrive as bytes: a lone surrogate written raw is invalid UTF-8 and refused earlier.
    raw = json.dumps(document, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    try:
        decoded = payload._decode(raw)
    except payload.PayloadRejected:
        return
    payload._check_structure(decoded)  # what the fast path let through, the walk accepts too


def test_nesting_and_escapes_still_reach_the_structure_walk():
    for text in ('{"x":' + "[" * 40 + "]" * 40 + "}", '{"x":"a\\u0000b"}', '{"x":"\\ud800"}'):
        assert payload._may_break_structure(text)
    assert not payload._may_break_structure(
        '{"type": "presentment", "merchant": {"name": "SHOP [1]"}}')


@pytest.mark.parametrize(("pattern", "text", "matches"), [
    ("^[A-Z]{3}$", "EUR", True),
    ("^[A-Z]{3}$", "EUR\n", False),  # ECMA-262: a final "$" matches only at the very end
    ("^[A-Z]{3}", "EURO", True),  # no final anchor: a matching prefix is enough
    ("^[A-Z]{3}", "EUR\n", True),
    ("^cost \\$", "cost $5", True),  # an escaped "$" is a literal dollar sign, not an anchor
    ("^cost \\$", "cost 5", False),
])
def test_both_validators_read_patterns_the_ecma_way_whatever_their_anchoring(pattern, text,
                                                                            matches):
    # The packaged schema's patterns all end in "$"; the rule must hold for any it may gain.
    schema = {"$schema": payload.SCHEMA["$schema"], "type": "object",
              "properties": {"x": {"type": "string", "pattern": pattern}}}
    strict = payload._StrictValidator(schema).is_valid({"x": text})
    fast = payload._fast_valid(fastjsonschema.compile(payload._ecma_anchored(schema)),
                               {"x": text})
    assert strict is fast is matches
