import json
import logging
import re
import time

import pytest

from console.finci import card_api, contract
from console.finci.card_api import CardApiClient, CardApiError, ErrorKind
from console.finci.contract import TokenStatus
from console.security.redaction import find_pans
from console.simulator.card_api_server import CardApiServer, Faults, create_app
from console.simulator.cards import CardBook

TOKEN = "sim-token-abc"
SECRET = b"sim-api-secret"
NOW = 1_800_000_000


@pytest.fixture
def book():
    return CardBook.seeded(11, 40)


@pytest.fixture
def api(book):
    app = create_app(book, TOKEN, SECRET, clock=lambda: NOW)
    return app.test_client()


def signed(path, body="", *, timestamp=NOW, secret=SECRET, token=TOKEN, sign_path=None):
    return {
        contract.CARD_API_HEADER_TOKEN: token,
        contract.CARD_API_HEADER_TIMESTAMP: str(timestamp),
        contract.CARD_API_HEADER_SIGNATURE: card_api.signature(
            secret, timestamp, sign_path or path, body),
        "Content-Type": "application/json",
    }


def call(api, method, path, payload=None, **kwargs):
    body = "" if payload is None else json.dumps(payload)
    return api.open(path, method=method, data=body, headers=signed(path, body, **kwargs))


def person_of(book):
    return next(c for c in book.cards() if c.person_id).person_id


def test_a_correctly_signed_request_is_served(api, book):
    response = call(api, "POST", "/v1/get-cards", {"person_id": person_of(book)})
    assert response.status_code == 200
    document = response.get_json()
    assert document["status"] == "success" and document["errors"] == []
    assert document["total"] == len(document["items"]) >= 1


@pytest.mark.parametrize("change, code", [
    ({"secret": b"another-secret"}, "invalid_signature"),
    ({"token": "someone-else"}, "invalid_token"),
    ({"timestamp": NOW - 301}, "stale_timestamp"),
    ({"timestamp": NOW + 301}, "stale_timestamp"),
    ({"sign_path": "/v1/get-card"}, "invalid_signature"),
])
def test_bad_or_stale_signatures_are_refused_with_the_error_envelope(api, book, change, code):
    response = call(api, "POST", "/v1/get-cards", {"person_id": person_of(book)}, **change)
    assert response.status_code == 401
    assert response.get_json() == {"status": "error", "errors": [code]}


def test_the_edges_of_the_timestamp_window_are_accepted(api, book):
    for timestamp in (NOW - 300, NOW + 300):
        response = call(api, "POST", "/v1/get-cards", {"person_id": person_of(book)},
                        timestamp=timestamp)
        assert response.status_code == 200


def test_the_body_is_covered_by_the_signature(api, book):
    path = "/v1/get-cards"
    headers = signed(path, json.dumps({"person_id": person_of(book)}))
    response = api.post(path, data=json.dumps({"person_id": "someone-else"}), headers=headers)
    assert response.get_json()["errors"] == ["invalid_signature"]


@pytest.mark.parametrize("drop", [contract.CARD_API_HEADER_TOKEN,
                                  contract.CARD_API_HEADER_TIMESTAMP,
                                  contract.CARD_API_HEADER_SIGNATURE])
def test_missing_auth_headers_are_refused(api, drop):
    headers = signed("/v1/get-cards", "{}")
    del headers[drop]
    response = api.post("/v1/get-cards", data="{}", headers=headers)
    assert response.status_code == 401
    assert response.get_json()["errors"] == ["missing_auth_headers"]


def test_the_signed_path_is_the_path_as_sent_with_its_percent_encoding(api):
    sent = "/v1/update-card-status/tok%20x"
    body = json.dumps({"token_status": "blocked"})
    as_sent = api.patch(sent, data=body, headers=signed(sent, body))
    assert as_sent.get_json()["errors"] == ["card_not_found"]  # authenticated, then looked up
    decoded = api.patch(sent, data=body,
                        headers=signed(sent, body, sign_path="/v1/update-card-status/tok x"))
    assert decoded.get_json()["errors"] == ["invalid_signature"]


def test_unknown_routes_and_bad_bodies_get_the_error_envelope(api, book):
    assert call(api, "POST", "/v1/nothing-here", {}).get_json() == {
        "status": "error", "errors": ["not_found"]}
    assert call(api, "POST", "/v1/get-cards", {}).get_json()["errors"] == [
        "exactly_one_owner_required"]
    assert call(api, "POST", "/v1/get-cards", {"person_id": True}).status_code == 400
    response = api.post("/v1/get-cards", data="{nope", headers=signed("/v1/get-cards", "{nope"))
    assert response.get_json()["errors"] == ["invalid_json"]


# --- through the console's own client, over a real socket -----------------------------------


@pytest.fixture
def server(book):
    with CardApiServer(book, TOKEN, SECRET) as running:
        yield running


@pytest.fixture
def client(server):
    with CardApiClient(server.url, TOKEN, SECRET, allow_http=True, timeout=(1.0, 1.0),
                       max_attempts=2, sleep=lambda _s: None) as api_client:
        yield api_client


def test_the_console_client_lists_cards_with_masked_numbers_only(client, book):
    person = person_of(book)
    cards = client.get_cards(person_id=person)
    assert cards.total == len(book.by_owner(person_id=person))
    assert not cards.card_number_exposed
    assert all(re.fullmatch(contract.MASKED_CARD_NUMBER_PATTERN, c.card_number)
               for c in cards.items)
    corporate = next(c for c in book.cards() if c.corporate_id).corporate_id
    assert client.get_cards(corporate_id=corporate).total >= 1


def test_no_response_ever_carries_a_full_card_number(server, book):
    app = server.app.test_client()
    for owner in {c.person_id for c in book.cards() if c.person_id}:
        response = call(app, "POST", "/v1/get-cards", {"person_id": owner},
                        timestamp=int(time.time()))
        assert find_pans(response.get_data(as_text=True)) == []


def test_status_changes_are_enforced_by_the_transition_model(client, book):
    card = next(c for c in book.cards() if c.token_status is TokenStatus.ACTIVE)
    client.update_card_status(card.token_id, "deactivated")
    assert book.get(card.token_id).token_status is TokenStatus.DEACTIVATED
    client.update_card_status(card.token_id, "deactivated")  # a retry of the same change
    client.update_card_status(card.token_id, "stolen")
    with pytest.raises(CardApiError) as refused:
        client.update_card_status(card.token_id, "active")
    assert refused.value.kind is ErrorKind.REJECTED
    assert refused.value.status == 409 and refused.value.errors == ("transition_not_allowed",)
    assert book.get(card.token_id).token_status is TokenStatus.STOLEN


def test_stage_changes_and_unknown_cards(client, book):
    card = book.cards()[0]
    client.update_card_stage(card.token_id, "plastic_not_delivered")
    assert book.get(card.token_id).token_stage.value == "plastic_not_delivered"
    with pytest.raises(CardApiError) as unknown:
        client.update_card_status("tok_unknown", "blocked")
    assert unknown.value.status == 404 and unknown.value.errors == ("card_not_found",)


def test_injected_5xx_are_answered_with_the_envelope_and_change_nothing(book):
    card = next(c for c in book.cards() if c.token_status is TokenStatus.ACTIVE)
    with CardApiServer(book, TOKEN, SECRET, faults=Faults(error_rate=1.0)) as failing, \
            CardApiClient(failing.url, TOKEN, SECRET, allow_http=True, max_attempts=2,
                          sleep=lambda _s: None) as client, \
            pytest.raises(CardApiError) as failed:
        client.update_card_status(card.token_id, "blocked")
    assert failed.value.status == 503 and failed.value.attempts == 2
    assert failed.value.errors == ("service_unavailable",)
    assert book.get(card.token_id).token_status is TokenStatus.ACTIVE


def test_injected_timeouts_stall_after_the_change_the_ambiguous_case(book):
    card = next(c for c in book.cards() if c.token_status is TokenStatus.ACTIVE)
    faults = Faults(timeout_rate=1.0, stall_s=1.0)
    with CardApiServer(book, TOKEN, SECRET, faults=faults) as stalling, \
            CardApiClient(stalling.url, TOKEN, SECRET, allow_http=True, timeout=(1.0, 0.2),
                          max_attempts=1) as client, \
            pytest.raises(CardApiError) as failed:
        client.update_card_status(card.token_id, "blocked")
    assert failed.value.kind is ErrorKind.TRANSPORT
    assert book.get(card.token_id).token_status is TokenStatus.BLOCKED


def test_injected_latency_slows_every_call(book):
    with CardApiServer(book, TOKEN, SECRET, faults=Faults(latency_s=(0.1, 0.1))) as slow, \
            CardApiClient(slow.url, TOKEN, SECRET, allow_http=True) as client:
        started = time.monotonic()
        client.get_cards(person_id=person_of(book))
    assert time.monotonic() - started >= 0.1


@pytest.mark.parametrize("faults", [dict(error_rate=1.5), dict(error_rate=0.6, timeout_rate=0.6),
                                    dict(latency_s=(0.2, 0.1))])
def test_fault_settings_are_validated(faults):
    with pytest.raises(ValueError):
        Faults(**faults)


def test_logs_name_the_endpoint_but_never_a_card(client, book, caplog):
    caplog.set_level(logging.DEBUG)
    person = person_of(book)
    client.get_cards(person_id=person)
    card = book.cards()[0]
    client.update_card_stage(card.token_id, "digital")
    ours = [r for r in caplog.records if r.name.startswith(("console.simulator", "werkzeug"))]
    text = "\n".join(record.getMessage() for record in ours)
    assert "get_cards" in text
    assert card.token_id not in text and card.card_number not in text
    assert find_pans(text) == []
