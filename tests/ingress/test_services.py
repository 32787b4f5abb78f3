"""Storing deliveries: duplicates, conflicts, business keys, decisioning answers, masking."""

from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager

import pytest
from sqlalchemy import false, select
from sqlalchemy.exc import OperationalError

from console.finci import contract
from console.ingress import decisioning_port, services
from console.ingress.decisioning_port import Answer
from console.ingress.models import MessageStatus, StoredMessage, WebhookDelivery
from console.security.redaction import find_pans
from tests.ingress.helpers import TEST_PANS, deliver, encode, message, new_webhook_id, signed

WEBHOOK_PATH = "/webhooks/finci"


def messages(db_session) -> list[StoredMessage]:
    db_session.expire_all()
    return list(db_session.scalars(select(StoredMessage).order_by(StoredMessage.id)))


def deliveries(db_session) -> list[WebhookDelivery]:
    return list(db_session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


def test_a_new_message_is_stored_pending_with_its_identity(client, db_session):
    body = message("presentment")
    raw, headers = signed(body)
    assert client.post(WEBHOOK_PATH, data=raw, headers=headers).status_code == 200
    [stored] = messages(db_session)
    assert stored.webhook_id == headers["webhook-id"]
    assert stored.business_key == f"presentment|-|{body['id']}"
    assert (stored.type, stored.finci_id, stored.known_type) == ("presentment", body["id"], True)
    assert stored.status == MessageStatus.PENDING
    assert stored.body_sha256 == hashlib.sha256(raw).hexdigest()
    assert stored.finci_created_at.isoformat() == "2026-11-27T08:00:00+00:00"
    assert stored.webhook_timestamp == int(headers["webhook-timestamp"])
    [delivery] = deliveries(db_session)
    assert delivery.disposition == "first"
    assert delivery.message_id == stored.id
    recorded = json.loads(delivery.headers)
    assert recorded["webhook-id"] == headers["webhook-id"]
    assert recorded["webhook-signature"] == "v1"  # the version offered, not the signature


def test_card_numbers_are_masked_in_the_stored_body_but_the_hash_is_of_the_original(
        client, db_session):
    body = message("authorization", advice=True)
    raw, headers = signed(body)
    client.post(WEBHOOK_PATH, data=raw, headers=headers)
    [stored] = messages(db_session)
    assert TEST_PANS[0] in raw.decode()
    assert find_pans(stored.body) == []
    assert stored.body_masked is True
    masked = json.loads(stored.body)  # still JSON
    assert masked["card_reference"] == "411111******1111"
    assert stored.body_sha256 == hashlib.sha256(raw).hexdigest()


def test_a_card_number_as_a_bare_json_number_is_stored_as_valid_masked_json(client, db_session):
    raw = encode(message()).replace(b'"card_reference": "4111111111111111"',
                                    b'"card_reference": 4111111111111111')
    assert client.post(WEBHOOK_PATH, data=raw, headers=signed(raw)[1]).status_code == 200
    [stored] = messages(db_session)
    assert json.loads(stored.body)["card_reference"] == "411111******1111"


@pytest.mark.parametrize("written", [
    b'4111111111111111.0', b'4.111111111111111e15', b'4111111111111111E0',
    b'"\\u0034111111111111111"', b'"\\u0034111\\t1111\\u00a01111 1111"',
    b'"4111\\/1111\\/1111\\/1111"',
])
def test_a_card_number_in_any_json_spelling_is_never_stored(client, db_session, written):
    # Escapes and floats decode to a card number the raw text does not show as one.
    raw = encode(message()).replace(b'"card_reference": "4111111111111111"',
                                    b'"card_reference": ' + written)
    assert written in raw
    assert client.post(WEBHOOK_PATH, data=raw, headers=signed(raw)[1]).status_code == 200
    [stored] = messages(db_session)
    assert stored.body_masked is True
    assert find_pans(stored.body) == []
    document = json.loads(stored.body)
    assert find_pans(json.dumps(document, ensure_ascii=False)) == []
    assert document["card_reference"] == "411111******1111"
    assert stored.body_sha256 == hashlib.sha256(raw).hexdigest()


def test_card_numbers_in_identifier_columns_are_masked_when_stored(client, db_session):
    # Every viewer sees these columns (deliveries type filter, dead letters, message pages).
    body = message("authorization", id_=f"fin-{TEST_PANS[0]}", token_id=f"tok_{TEST_PANS[1]}")
    raw, headers = signed(body, webhook_id=f"msg_{TEST_PANS[2]}")
    assert client.post(WEBHOOK_PATH, data=raw, headers=headers).status_code == 200
    unknown = message(type_=f"x.{TEST_PANS[0]}")
    assert client.post(WEBHOOK_PATH, data=encode(unknown),
                       headers=signed(unknown)[1]).status_code == 200
    first, second = messages(db_session)
    for stored in (first, second):
        for column in ("webhook_id", "finci_id", "business_key", "token_id", "type"):
            assert find_pans(str(getattr(stored, column))) == [], column
    assert (first.finci_id, first.token_id) == ("fin-411111******1111", "tok_555555******4444")
    assert first.business_key.startswith("authorization|request|fin-411111******1111~")
    assert second.type == "x.411111******1111"
    assert [find_pans(d.webhook_id) for d in deliveries(db_session)] == [[], []]
    # The same delivery again is still recognised as a duplicate by its masked identity.
    assert client.post(WEBHOOK_PATH, data=raw, headers=headers).status_code == 200
    assert [d.disposition for d in deliveries(db_session)] == ["first", "first", "duplicate"]


def test_two_ids_that_mask_alike_are_still_two_messages(client, db_session):
    # Same first six and last four digits: masked, their business keys would be equal and the
    # second message a conflict, never applied.
    for finci_id in ("4111111111111111", "4111110000091111"):
        body = message("authorization", id_=finci_id)
        raw, headers = signed(body)
        assert client.post(WEBHOOK_PATH, data=raw, headers=headers).status_code == 200
    first, second = messages(db_session)
    assert first.finci_id == second.finci_id == "411111******1111"
    assert first.business_key != second.business_key
    assert [d.disposition for d in deliveries(db_session)] == ["first", "first"]
    assert find_pans(first.business_key + " " + second.business_key) == []
    # A retry under a new webhook-id is still recognised by its business identity.
    retry, headers = signed(body)
    assert client.post(WEBHOOK_PATH, data=retry, headers=headers).status_code == 200
    assert [d.disposition for d in deliveries(db_session)][-1] == "duplicate"


def test_finci_numeric_ids_that_are_no_card_numbers_are_stored_as_typed(client, db_session):
    body = message("authorization", id_="251001435963146785")  # FINCI's example: not Luhn-valid
    assert client.post(WEBHOOK_PATH, data=encode(body), headers=signed(body)[1]).status_code == 200
    [stored] = messages(db_session)
    assert stored.finci_id == "251001435963146785"
    assert stored.business_key == "authorization|request|251001435963146785"


def test_a_luhn_valid_finci_id_is_kept_as_typed_and_card_numbers_beside_it_are_masked(
        client, db_session):
    finci_id = "251001435963146788"  # FINCI's id form, and it passes the Luhn check
    body = message("presentment", id_=finci_id, authorization_id=finci_id)
    body["merchant"]["name"] = "Shop 4111111111111111 and 251001435963146788"
    body["note"] = "ref 251001000000036788"  # the same form, but not this message's id
    assert client.post(WEBHOOK_PATH, data=encode(body), headers=signed(body)[1]).status_code == 200
    [stored] = messages(db_session)
    assert stored.finci_id == finci_id
    assert stored.business_key == f"presentment|-|{finci_id}"
    kept = json.loads(stored.body)
    assert kept["id"] == kept["authorization_id"] == finci_id
    assert kept["merchant"]["name"] == f"Shop 411111******1111 and {finci_id}"
    assert kept["note"] == "ref 251001********6788"


def test_a_luhn_valid_finci_id_written_with_escapes_is_kept_and_a_card_number_is_not(
        client, db_session):
    finci_id = "251001435963146788"
    escaped = "".join(f"\\u{ord(c):04x}" for c in finci_id)
    body = message("refund", id_=finci_id)
    body["merchant"]["name"] = "PLACEHOLDER"
    raw = encode(body).replace(f'"{finci_id}"'.encode(), f'"{escaped}"'.encode()).replace(
        b'"PLACEHOLDER"', b'"\\u0034111111111111111"')
    assert client.post(WEBHOOK_PATH, data=raw, headers=signed(raw)[1]).status_code == 200
    [stored] = messages(db_session)
    assert stored.finci_id == finci_id
    assert json.loads(stored.body)["id"] == finci_id
    assert "4111111111111111" not in json.loads(stored.body)["merchant"]["name"]


def test_a_card_number_that_is_not_of_finci_id_form_in_the_id_field_is_masked(client,
                                                                           db_session):
    body = message("refund", id_="4111111111111111")
    assert client.post(WEBHOOK_PATH, data=encode(body), headers=signed(body)[1]).status_code == 200
    [stored] = messages(db_session)
    assert stored.finci_id == "411111******1111"
    assert "4111111111111111" not in stored.body


def test_the_same_delivery_twice_is_one_message_two_deliveries_same_answer(client, db_session):
    raw, headers = signed(message())
    first = client.post(WEBHOOK_PATH, data=raw, headers=headers)
    again = client.post(WEBHOOK_PATH, data=raw, headers=headers)
    assert (first.status_code, first.data) == (again.status_code, again.data)
    assert len(messages(db_session)) == 1
    assert [d.disposition for d in deliveries(db_session)] == ["first", "duplicate"]


def test_a_retry_with_a_fresh_timestamp_is_the_same_message(client, db_session):
    body, webhook_id = message(), new_webhook_id()
    import time

    deliver(client, body, webhook_id=webhook_id, timestamp=int(time.time()) - 60)
    deliver(client, body, webhook_id=webhook_id)
    assert len(messages(db_session)) == 1
    assert [d.disposition for d in deliveries(db_session)] == ["first", "duplicate"]


def test_the_same_webhook_id_with_a_different_body_is_a_conflict_never_applied(client,
                                                                              db_session):
    webhook_id = new_webhook_id()
    original = message()
    changed = dict(original, amount=999_999)
    assert deliver(client, original, webhook_id=webhook_id).status_code == 200
    assert deliver(client, changed, webhook_id=webhook_id).status_code == 200
    [stored] = messages(db_session)
    assert json.loads(stored.body)["amount"] == 1250
    first, conflict = deliveries(db_session)
    assert conflict.disposition == "conflict"
    assert conflict.message_id == stored.id
    assert json.loads(conflict.conflict_body)["amount"] == 999_999
    assert find_pans(conflict.conflict_body) == []
    assert conflict.body_sha256 != first.body_sha256


def test_a_different_webhook_id_with_the_same_business_key_is_a_duplicate(client, db_session):
    body = message("refund")
    first = deliver(client, body)
    second = deliver(client, body)  # new webhook-id, same type and id
    assert first.data == second.data
    assert len(messages(db_session)) == 1
    dispositions = [(d.disposition, d.webhook_id) for d in deliveries(db_session)]
    assert dispositions[1][0] == "duplicate"
    assert dispositions[0][1] != dispositions[1][1]


def test_a_different_webhook_id_same_business_key_different_body_is_a_conflict(client,
                                                                              db_session):
    body = message("refund")
    deliver(client, body)
    deliver(client, dict(body, amount=1))
    assert len(messages(db_session)) == 1
    assert [d.disposition for d in deliveries(db_session)] == ["first", "conflict"]


def test_a_request_and_its_advice_share_id_but_are_two_messages(client, db_session):
    request_body = message("authorization", advice=False)
    advice_body = message("authorization", id_=request_body["id"], advice=True)
    deliver(client, request_body)
    deliver(client, advice_body)
    keys = sorted(m.business_key for m in messages(db_session))
    assert keys == [f"authorization|advice|{request_body['id']}",
                    f"authorization|request|{request_body['id']}"]


def test_an_unknown_type_is_stored_for_review(client, db_session):
    response = deliver(client, {"type": "chargeback", "id": "cb_1",
                                "created_at": "2026-11-27T08:00:00Z", "pan": TEST_PANS[2]})
    assert response.status_code == 200
    [stored] = messages(db_session)
    assert (stored.type, stored.known_type, stored.business_key) == (
        "chargeback", False, "chargeback|-|cb_1")


# --- authorization requests and the decisioning port ----------------------------------------

def test_without_decisioning_a_request_gets_the_safe_default_and_the_reason(client, db_session):
    with decisioning_port.using(None):
        response = deliver(client, message("authorization", advice=False))
    assert response.status_code == 200
    assert response.data == contract.AUTHORIZATION_DECLINE_BODY
    [stored] = messages(db_session)
    assert (stored.decision, stored.decision_reason) == ("error", "decisioning not configured")
    assert stored.answer_body.encode() == contract.AUTHORIZATION_DECLINE_BODY


def test_the_decision_is_recorded_and_a_duplicate_gets_exactly_the_same_answer(client,
                                                                              db_session):
    calls = []

    def approve_once(session, parsed, arrived):
        calls.append(parsed.id)
        return Answer(approve=len(calls) == 1, reason=f"call {len(calls)}")

    raw, headers = signed(message("authorization", advice=False))
    with decisioning_port.using(approve_once):
        first = client.post(WEBHOOK_PATH, data=raw, headers=headers)
        again = client.post(WEBHOOK_PATH, data=raw, headers=headers)
    assert first.data == again.data == contract.AUTHORIZATION_APPROVE_BODY
    assert len(calls) == 1
    [stored] = messages(db_session)
    assert (stored.decision, stored.decision_reason) == ("success", "call 1")


def test_advices_and_other_types_never_reach_decisioning(client):
    calls = []
    with decisioning_port.using(lambda s, m, a: calls.append(m) or Answer(True, "x")):
        deliver(client, message("authorization", advice=True))
        deliver(client, message("presentment"))
    assert calls == []


def test_a_failing_decider_gives_the_safe_default_and_leaves_no_partial_writes(client,
                                                                             db_session):
    def broken(session, parsed, arrived):
        session.add(WebhookDelivery())  # half-done work, then a bug
        raise RuntimeError("bug with 4111111111111111 in it")

    with decisioning_port.using(broken):
        response = deliver(client, message("authorization", advice=False))
    assert response.data == contract.AUTHORIZATION_DECLINE_BODY
    [stored] = messages(db_session)
    assert stored.decision_reason == "decisioning failed"
    assert len(deliveries(db_session)) == 1


def test_a_decider_returning_garbage_gives_the_safe_default(client, db_session):
    with decisioning_port.using(lambda s, m, a: "approve"):
        response = deliver(client, message("authorization", advice=False))
    assert response.data == contract.AUTHORIZATION_DECLINE_BODY
    assert messages(db_session)[0].decision_reason == "decisioning failed"


def test_a_conflicting_authorization_request_is_declined(client, db_session):
    webhook_id = new_webhook_id()
    body = message("authorization", advice=False)
    with decisioning_port.using(lambda s, m, a: Answer(True, "ok")):
        assert deliver(client, body, webhook_id=webhook_id).data == (
            contract.AUTHORIZATION_APPROVE_BODY)
        changed = deliver(client, dict(body, amount=10**9), webhook_id=webhook_id)
    assert changed.data == contract.AUTHORIZATION_DECLINE_BODY


def _database_error(*_args, **_kwargs):
    raise OperationalError("SELECT 1", {}, ConnectionError("server closed the connection"))


def test_a_database_failure_inside_decisioning_is_a_503_and_nothing_is_stored(client,
                                                                              db_session):
    # Not the safe default: an answer nobody could record would be worse than FINCI retrying.
    with decisioning_port.using(_database_error):
        response = deliver(client, message("authorization", advice=False))
    assert response.status_code == 503
    assert response.headers["Retry-After"] == str(
        contract.STORAGE_UNAVAILABLE_RETRY_AFTER_SECONDS)
    assert messages(db_session) == []
    assert deliveries(db_session) == []


def test_a_conflicting_message_that_vanishes_before_it_is_read_is_a_503(client, db_session,
                                                                        monkeypatch):
    raw, headers = signed(message())
    assert client.post(WEBHOOK_PATH, data=raw, headers=headers).status_code == 200
    # The duplicate's INSERT does nothing, then the winner is gone when it is looked up.
    nothing = select(*services._WINNER_COLUMNS).where(false())
    monkeypatch.setattr(services, "_WINNER_BY_ID", nothing)
    monkeypatch.setattr(services, "_WINNER_BY_KEY", nothing)
    again = client.post(WEBHOOK_PATH, data=raw, headers=headers)
    assert again.status_code == 503
    assert again.json == {"status": "error", "error": "unavailable"}
    assert [d.disposition for d in deliveries(db_session)] == ["first"]


def test_a_refusal_is_still_refused_when_it_cannot_be_recorded(client, counts,
                                                               monkeypatch, caplog):
    raw, headers = signed(message())
    headers["webhook-signature"] = "v1," + "A" * 43 + "="
    monkeypatch.setattr(services, "_core_transaction", contextmanager(_database_error))
    response = client.post(WEBHOOK_PATH, data=raw, headers=headers)
    assert response.status_code == 401
    assert response.json == {"status": "error", "error": "unauthorized"}
    assert "could not record a refused delivery: OperationalError" in caplog.messages
    assert counts() == {"messages": 0, "deliveries": 0, "rejections": 0}
