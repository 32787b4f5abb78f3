"""Card-data reveal end to end: permission, step-up, reason, 30 s, audit, rate limit, flow."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select, text

from console.audit import Actor
from console.audit.models import AuditEvent
from console.flows.services import Flow, set_flow
from console.keys import card_data_keys, reveal
from tests.conftest import REVEAL_TEST_PAN
from tests.keys.card_data.conftest import ACTOR, add_card, allow_reveal, new_key

MASKED = f"{REVEAL_TEST_PAN[:4]}-{REVEAL_TEST_PAN[4:6]}**-****-{REVEAL_TEST_PAN[-4:]}"


@pytest.fixture
def card(db_session, store):
    card = add_card(db_session, new_key(db_session, store))
    db_session.commit()
    return card


@pytest.fixture
def revealer(app, sign_in, db_session):
    return allow_reveal(db_session, sign_in(app.test_client(), "operator"))


def _reveal(client, card, reason="cardholder dispute, ticket 4711", **headers):
    data = {"csrf_token": client.csrf_token}
    if reason is not None:
        data["reason"] = reason
    return client.post(f"/cards/{card.token_id}/reveal", data=data, headers=headers)


def _reveals(db_session):
    return db_session.scalars(select(AuditEvent).where(
        AuditEvent.action == "cards.card_data.reveal").order_by(AuditEvent.seq)).all()


def test_a_permitted_person_sees_the_number_for_30_seconds_uncached(revealer, card,
                                                                     db_session):
    response = _reveal(revealer, card)
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert REVEAL_TEST_PAN in body and 'data-reveal-seconds="30"' in body
    assert "no-store" in response.headers["Cache-Control"]
    (event,) = _reveals(db_session)
    details = json.loads(event.details)
    assert (event.actor_id, event.target_type, event.target_id, event.outcome) == (
        "operator", "card", card.token_id, "success")
    assert details["reason"] == "cardholder dispute, ticket 4711"
    assert REVEAL_TEST_PAN not in event.details and REVEAL_TEST_PAN[6:] not in event.details


def test_the_card_page_is_masked_and_offers_reveal_only_to_the_permitted(
        revealer, as_admin, card):
    page = revealer.get(f"/cards/{card.token_id}").get_data(as_text=True)
    assert MASKED in page and REVEAL_TEST_PAN not in page and "Reveal full number" in page
    admin_page = as_admin.get(f"/cards/{card.token_id}").get_data(as_text=True)
    assert MASKED in admin_page and "Reveal full number" not in admin_page


@pytest.mark.parametrize("persona", ["viewer", "operator", "oncall", "compliance", "admin"])
def test_no_role_may_reveal_without_the_reveal_permission(app, sign_in, card, db_session,
                                                           persona):
    client = sign_in(app.test_client(), persona)
    response = _reveal(client, card)
    assert response.status_code == 403 and REVEAL_TEST_PAN not in response.get_data(as_text=True)
    assert _reveals(db_session) == []


def test_anonymous_cannot_reveal(client, card):
    assert client.post(f"/cards/{card.token_id}/reveal").status_code in (302, 401, 403)


def test_an_old_sign_in_must_step_up_first(app, sign_in, card, db_session):
    stale = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30)
    client = allow_reveal(db_session, sign_in(app.test_client(), "operator", auth_time=stale))
    response = _reveal(client, card, **{"HX-Request": "true"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"].startswith("/auth/step-up")
    assert _reveals(db_session) == []


@pytest.mark.parametrize("reason", [None, "", "   ", "short", "x" * 501])
def test_a_written_reason_is_required(revealer, card, db_session, reason):
    response = _reveal(revealer, card, reason=reason)
    assert response.status_code == 400 and "Write why" in response.get_data(as_text=True)
    assert _reveals(db_session) == []


def test_reveals_are_rate_limited_per_person(app, revealer, sign_in, card, db_session):
    for _ in range(reveal.RATE_LIMIT):
        assert _reveal(revealer, card).status_code == 200
    refused = _reveal(revealer, card)
    assert refused.status_code == 429 and REVEAL_TEST_PAN not in refused.get_data(as_text=True)
    assert [e.outcome for e in _reveals(db_session)][-1] == "denied"
    # Another person is not held back by the first one's reveals.
    other = allow_reveal(db_session, sign_in(app.test_client(), "oncall"))
    assert _reveal(other, card).status_code == 200


def test_the_rate_window_slides(db_session, store, card):
    at = dt.datetime.now(dt.UTC)
    person = Actor.cli("reveal-window")
    for minutes in range(reveal.RATE_LIMIT):
        reveal.reveal(db_session, store, card, actor=person, reason="a test of the window",
                      environment="sandbox", at=at + dt.timedelta(minutes=minutes))
    with pytest.raises(reveal.RevealRefused):
        reveal.reveal(db_session, store, card, actor=person, reason="a test of the window",
                      environment="sandbox", at=at + dt.timedelta(minutes=59))
    later = reveal.reveal(db_session, store, card, actor=person, reason="a test of the window",
                          environment="sandbox", at=at + dt.timedelta(minutes=61))
    assert later.number == REVEAL_TEST_PAN and REVEAL_TEST_PAN not in repr(later)


def test_reveal_is_refused_for_everyone_while_the_flow_is_off(revealer, card, db_session):
    set_flow(db_session, Actor.cli("oncall"), Flow.REVEAL, enabled=False,
             reason="suspected data leak")
    db_session.commit()
    response = _reveal(revealer, card)
    assert response.status_code == 423 and REVEAL_TEST_PAN not in response.get_data(as_text=True)
    assert _reveals(db_session) == []
    denial = db_session.scalars(select(AuditEvent).where(
        AuditEvent.action == "auth.access.deny").order_by(AuditEvent.seq.desc())).first()
    assert "flow:reveal" in denial.details
    set_flow(db_session, Actor.cli("oncall"), Flow.REVEAL, enabled=True, reason="leak ruled out")
    db_session.commit()
    assert _reveal(revealer, card).status_code == 200


def test_a_retired_key_makes_the_card_data_unreadable_audited(revealer, card, db_session):
    (key,) = card_data_keys.list_keys(db_session, "sandbox")
    card_data_keys.retire(db_session, key.kid, environment="sandbox", actor=ACTOR,
                          reason="rotation done")
    db_session.commit()
    response = _reveal(revealer, card)
    assert response.status_code == 409 and "key retired" in response.get_data(as_text=True)
    (event,) = _reveals(db_session)
    assert event.outcome == "failure" and json.loads(event.details)["refused"] == "key_retired"


def test_a_card_without_card_data_or_unknown(revealer, db_session):
    from console.cards.models import Card

    bare = Card(token_id="tok-bare", status="active", currency="EUR")
    db_session.add(bare)
    db_session.commit()
    assert _reveal(revealer, bare).status_code == 404
    assert _reveals(db_session)[-1].outcome == "failure"
    assert revealer.post("/cards/nope/reveal", data={
        "csrf_token": revealer.csrf_token, "reason": "no such card at all"}).status_code == 404


def test_the_number_is_in_no_table(revealer, card, db_session, engine):
    assert _reveal(revealer, card).status_code == 200
    tables = [name for (name,) in db_session.execute(text(
        "SELECT name FROM sqlite_master WHERE type='table'" if engine.dialect.name == "sqlite"
        else "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))]
    for table in tables:
        for row in db_session.execute(text(f'SELECT * FROM "{table}"')):
            assert REVEAL_TEST_PAN not in " ".join(str(v) for v in row), table


def test_newer_card_data_replaces_the_old_and_decrypts(revealer, card, db_session, store):
    from console.keys import jwe
    from tests.keys.card_data.conftest import card_payload

    newer = new_key(db_session, store)
    reveal.store_envelope(db_session, card, jwe.encrypt_for(newer.public_pem, newer.kid,
                                                            card_payload()))
    db_session.commit()
    assert reveal.envelope_for(db_session, card).kid == newer.kid
    assert _reveal(revealer, card).status_code == 200


def test_no_secret_store_is_a_503_without_a_number(app, revealer, card):
    app.extensions.pop("secrets.store")
    response = _reveal(revealer, card)
    assert response.status_code == 503 and REVEAL_TEST_PAN not in response.get_data(as_text=True)


def test_the_kill_switch_page_counts_the_last_hours_reveals(revealer, card, as_oncall):
    assert _reveal(revealer, card).status_code == 200
    assert _reveal(revealer, card, reason="").status_code == 400  # refused: not counted
    body = as_oncall.get("/flows/").get_data(as_text=True)
    assert "1 card numbers revealed" in body
