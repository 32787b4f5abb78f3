import random

from console.security.redaction import find_pans
from tests.support.ids import letters, new_id


def test_a_hex_id_can_read_as_a_card_number_which_is_why_test_ids_are_letters():
    # The form the decisioning helper used ("auth_" + 16 hex digits) failed CI at random.
    rng = random.Random(7)
    hits = [i for i in range(200_000) if find_pans(f"auth_{rng.getrandbits(64):016x}")]
    assert hits, "16 hex digits hold a Luhn-valid 13-digit run now and then"


def test_letter_ids_never_hold_a_digit():
    ids = [new_id("auth", 16) for _ in range(20_000)]
    assert all(value.startswith("auth_") and value[5:].isalpha() for value in ids)
    assert all(letters(32).isalpha() for _ in range(1_000))
    assert len(set(ids)) == len(ids)
