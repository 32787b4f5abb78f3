import json
import re

import pytest

from console.finci import contract


def test_webhook_header_names_are_standard_webhooks():
    assert contract.WEBHOOK_HEADERS == ("webhook-id", "webhook-timestamp", "webhook-signature")


def test_tolerance_and_body_cap_are_the_assumed_values():
    assert contract.WEBHOOK_TIMESTAMP_TOLERANCE_SECONDS == 300
    assert contract.WEBHOOK_MAX_BODY_BYTES == 262_144 == 256 * 1024


def test_message_types_are_the_five_assumed_ones():
    assert [t.value for t in contract.MessageType] == [
        "authorization",
        "reversal",
        "presentment",
        "refund",
        "card_status",
    ]


def test_token_status_keeps_the_api_spelling_of_compromized():
    assert contract.TokenStatus("compromized") is contract.TokenStatus.COMPROMIZED
    with pytest.raises(ValueError):
        contract.TokenStatus("compromised")
    assert len(contract.TokenStatus) == 10


def test_token_stages_and_requestable_subset():
    assert {s.value for s in contract.TokenStage} == {
        "digital",
        "plastic_not_delivered",
        "plastic_delivered",
    }
    assert {"digital", "plastic_not_delivered"} == contract.REQUESTABLE_TOKEN_STAGES


def test_authorization_answer_bodies_are_exact_json():
    assert json.loads(contract.authorization_answer_body(True)) == {"status": "success"}
    assert json.loads(contract.authorization_answer_body(False)) == {"status": "error"}
    assert contract.authorization_answer_body(True) == contract.AUTHORIZATION_APPROVE_BODY
    assert contract.authorization_answer_body(False) == contract.AUTHORIZATION_DECLINE_BODY


def test_answer_mappings_cannot_be_mutated():
    with pytest.raises(TypeError):
        contract.AUTHORIZATION_APPROVE["status"] = "error"  # type: ignore[index]


def test_ingress_answers_never_redirect_and_never_say_gone():
    codes = {answer.value for answer in contract.IngressAnswer}
    assert codes == {200, 400, 401, 413, 503}
    assert not any(300 <= code < 400 for code in codes)
    assert 410 not in codes


def test_authorization_deadline_is_three_seconds():
    assert contract.AUTHORIZATION_ANSWER_DEADLINE_SECONDS == 3


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("4111-11**-****-1111", True),
        ("5555-55**-****-4444", True),
        ("4111111111111111", False),
        ("4111-1111-1111-1111", False),
        ("4111-11**-****-111", False),
        ("4111-11**-****-1111\n", False),
    ],
)
def test_masked_card_number_pattern(value, masked):
    assert bool(re.fullmatch(contract.MASKED_CARD_NUMBER_PATTERN, value)) is masked


def test_card_api_paths_take_a_token_id():
    assert contract.CARD_API_PATH_GET_CARDS == "/v1/get-cards"
    assert contract.CARD_API_PATH_UPDATE_STATUS.format(token_id="t") == "/v1/update-card-status/t"
    assert contract.CARD_API_PATH_UPDATE_STAGE.format(token_id="t") == "/v1/update-card-stage/t"
