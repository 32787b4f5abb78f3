import json
import re
from dataclasses import asdict

import pytest

from console.finci import contract
from console.finci.card_status import TransitionRefused
from console.finci.contract import TokenStage, TokenStatus
from console.security.redaction import find_pans
from console.simulator.cards import CardBook, UnknownCard, masked_number, seeded_cards

MASKED = re.compile(contract.MASKED_CARD_NUMBER_PATTERN)


def test_the_same_seed_gives_the_same_cards_and_another_seed_other_cards():
    assert seeded_cards(7, 30) == seeded_cards(7, 30)
    assert seeded_cards(7, 30) != seeded_cards(8, 30)


def test_a_smaller_book_is_a_prefix_of_a_larger_one():
    assert seeded_cards(3, 85)[:50] == seeded_cards(3, 50)


@pytest.mark.parametrize("seed", range(5))
def test_cards_only_ever_hold_masked_numbers(seed):
    cards = seeded_cards(seed, 200)
    assert all(MASKED.fullmatch(card.card_number) for card in cards)
    assert find_pans(json.dumps([asdict(card) for card in cards])) == []


def test_seeded_cards_cover_owners_statuses_and_unique_tokens():
    cards = seeded_cards(1, 200)
    assert len({c.token_id for c in cards}) == 200
    assert cards[0].token_status is TokenStatus.ACTIVE and cards[0].person_id
    assert {c.token_status for c in cards} >= {TokenStatus.ACTIVE, TokenStatus.NEW,
                                               TokenStatus.DEACTIVATED}
    corporate = [c for c in cards if c.corporate_id]
    assert corporate and all(c.employee_id and not c.person_id for c in corporate)
    assert all(re.fullmatch(contract.EXPIRATION_DATE_PATTERN, c.expiration_date) for c in cards)
    assert all(re.fullmatch(r"[A-Z]{3}", c.currency) for c in cards)


def test_the_api_item_has_exactly_the_documented_fields():
    card = seeded_cards(1, 1)[0]
    assert set(card.api_item()) == {"token_id", "embossing_name", "card_number",
                                    "expiration_date", "product_id"}


@pytest.mark.parametrize("bin6, last4", [("41111", "1111"), ("411111", "11111"),
                                          ("41111x", "1111"), ("411111", "")])
def test_masked_number_needs_six_and_four_digits(bin6, last4):
    with pytest.raises(ValueError):
        masked_number(bin6, last4)


def test_masked_number_keeps_only_first_six_and_last_four():
    assert masked_number("411111", "1111") == "4111-11**-****-1111"


@pytest.fixture
def book():
    return CardBook.seeded(3, 40)


def _card(book, status):
    return next(c for c in book.cards() if c.token_status is status)


def test_requested_status_changes_follow_the_working_model(book):
    card = _card(book, TokenStatus.ACTIVE)
    assert book.request_status(card.token_id, "deactivated").token_status is TokenStatus.DEACTIVATED
    assert book.request_status(card.token_id, "active").token_status is TokenStatus.ACTIVE
    with pytest.raises(TransitionRefused):
        book.request_status(card.token_id, "referral")
    assert book.request_status(card.token_id, "lost").token_status is TokenStatus.LOST
    with pytest.raises(TransitionRefused):
        book.request_status(card.token_id, "active")  # an end state never changes
    assert book.get(card.token_id).token_status is TokenStatus.LOST


def test_asking_for_the_current_status_again_succeeds_unchanged(book):
    card = _card(book, TokenStatus.ACTIVE)
    assert book.request_status(card.token_id, "active") == card


def test_new_cards_cannot_be_suspended(book):
    card = _card(book, TokenStatus.NEW)
    with pytest.raises(TransitionRefused):
        book.request_status(card.token_id, "deactivated")


def test_only_documented_stages_can_be_requested(book):
    card = book.cards()[0]
    assert book.request_stage(card.token_id, "digital").token_stage is TokenStage.DIGITAL
    with pytest.raises(ValueError):
        book.request_stage(card.token_id, "plastic_delivered")


def test_unknown_cards_are_reported(book):
    with pytest.raises(UnknownCard):
        book.request_status("tok_nope", "active")
    with pytest.raises(UnknownCard):
        book.get("tok_nope")


def test_changes_finci_reports_are_recorded_as_facts(book):
    card = _card(book, TokenStatus.BLOCKED) if any(
        c.token_status is TokenStatus.BLOCKED for c in book.cards()) else book.cards()[0]
    recorded = book.record(card.token_id, "active", "plastic_delivered")
    assert recorded.token_status is TokenStatus.ACTIVE
    assert recorded.token_stage is TokenStage.PLASTIC_DELIVERED
    assert book.record("tok_unknown", "active") is None


def test_cards_are_found_by_exactly_one_owner(book):
    person = next(c for c in book.cards() if c.person_id)
    corporate = next(c for c in book.cards() if c.corporate_id)
    assert person in book.by_owner(person_id=person.person_id)
    assert corporate in book.by_owner(corporate_id=corporate.corporate_id)
    with pytest.raises(ValueError):
        book.by_owner()
    with pytest.raises(ValueError):
        book.by_owner(person_id="1", corporate_id="2")


def test_a_book_refuses_duplicate_tokens():
    card = seeded_cards(1, 1)[0]
    with pytest.raises(ValueError):
        CardBook([card, card])
