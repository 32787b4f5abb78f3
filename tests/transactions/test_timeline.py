"""The timeline service and ``flask trace``: every step in time order, found by any identifier."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from console.ingress.models import StoredMessage
from console.transactions import timeline
from tests.transactions.support import Bodies, new_id


@pytest.fixture
def story(driver, bodies, card):
    """Authorization, advice, partial presentment, reversal of the rest, a duplicate delivery."""
    request = bodies.request("auth_story", 10_000)
    presentment = bodies.presentment("auth_story", 6_000, id_="pres_story")
    driver.run(request, bodies.advice("auth_story", 10_000), presentment,
               bodies.reversal("auth_story", 4_000, id_="rev_story"))
    driver.deliver(presentment)  # FINCI retries: the same message again
    driver.process()
    return driver.transaction("auth_story")


def kinds(built) -> list[str]:
    return [e.kind for e in built.events]


def test_the_timeline_shows_every_step_and_every_delivery_in_time_order(db_session, story):
    built = timeline.build(db_session, story.id)
    order = kinds(built)
    for expected in ["request.delivery", "decision", "hold.placed", "advice.delivery",
                     "advice.compared", "presentment.delivery", "posting.posted",
                     "hold.converted", "reversal.delivery"]:
        assert expected in order, expected
    assert order.index("request.delivery") < order.index("advice.delivery") < order.index(
        "presentment.delivery") < order.index("reversal.delivery")
    deliveries = [e for e in built.events if e.kind == "presentment.delivery"]
    assert [e.data["disposition"] for e in deliveries] == ["first", "duplicate"]
    assert [e.at for e in built.events] == sorted(e.at for e in built.events)
    assert all(e.latency_ms is not None and e.latency_ms >= 0 for e in built.events[1:])
    decision = next(e for e in built.events if e.kind == "decision")
    assert decision.data["answer"] == "success" and decision.data["rule_trace"]
    facts = built.facts()
    assert (facts["state"], facts["authorized"], facts["cleared"], facts["reversed"]) == (
        "posted", 10_000, 6_000, 4_000)


def test_a_transaction_is_found_by_any_of_its_identifiers(db_session, story, card):
    stored = db_session.scalar(select(StoredMessage).where(StoredMessage.finci_id == "rev_story"))
    for text in ["auth_story", "pres_story", "rev_story", stored.webhook_id, card.token_id]:
        found = timeline.find(db_session, timeline.parse_query(text))
        assert story.id in [t.id for t in found], text
    by_amount = timeline.find(db_session, timeline.parse_query("", "60.00", "2026-11-27"))
    assert story.id in [t.id for t in by_amount]
    assert story.id not in [t.id for t in timeline.find(db_session,
                                                         timeline.parse_query("", "60.01"))]
    assert timeline.find(db_session, timeline.parse_query("nothing_like_this")) == []


def test_a_card_is_found_by_its_masked_number_and_a_full_number_is_masked_first(
        db_session, story, card):
    card.masked_number = "5555-55**-****-4444"
    db_session.commit()
    for text in ["5555-55**-****-4444", "555555…4444", "555555******4444",
                 "5555 5555 5555 4444"]:
        query = timeline.parse_query(text)
        assert "5555555555554444" not in query.text.replace(" ", "").replace("-", "")
        assert story.id in [t.id for t in timeline.find(db_session, query)], text


@pytest.mark.parametrize(("amount", "day"), [("12,5x", None), ("-1", None), ("1.234", None),
                                             (None, "27/11/2026")])
def test_bad_amounts_and_dates_are_refused(amount, day):
    with pytest.raises(timeline.QueryInvalid):
        timeline.parse_query("", amount, day)


def test_the_axis_places_every_event_on_its_lane(db_session, story):
    built = timeline.build(db_session, story.id)
    drawn = timeline.axis(built)
    assert len(drawn.points) == len(built.events)
    lanes = dict(drawn.lanes)
    assert {p.y for p in drawn.points} <= set(lanes.values())
    xs = [p.x for p in drawn.points]
    assert xs == sorted(xs) and xs[0] == drawn.left


def test_trace_prints_the_same_timeline_as_json(cli, db_session, story):
    result, document = cli("trace", "pres_story", "--json")
    assert result.exit_code == 0, result.output
    built = timeline.build(db_session, story.id)
    assert document == json.loads(json.dumps(built.as_dict(), default=str))
    assert document["transaction"]["state"] == "posted"
    result, _ = cli("trace", "auth_story")
    assert result.exit_code == 0 and "Authorization request" in result.output


def test_trace_lists_candidates_when_several_match_and_fails_when_none(cli, driver, card):
    bodies = Bodies(card.token_id)
    driver.run(bodies.presentment(None, 100), bodies.presentment(None, 200))
    result, document = cli("trace", card.token_id, "--json")
    assert result.exit_code == 1 and len(document["candidates"]) == 2
    result, document = cli("trace", new_id("nothing"), "--json")
    assert result.exit_code == 1 and document["candidates"] == []
    result, _ = cli("trace")
    assert result.exit_code == 2


def test_card_status_changes_operator_actions_and_audit_entries_join_the_timeline(
        db_session, story, card):
    from console.audit import Actor
    from console.cards import actions
    from console.cards.models import StatusSource
    from console.cards.refresh import apply_status_report
    from console.db import utcnow
    from console.transactions.settings import LifecycleSettings

    configured = LifecycleSettings(api_base_url="https://finci.invalid", api_token="t",
                                   api_secret="s")
    actions.request_action(db_session, Actor.system("ops-1"), card.token_id, "block",
                           "fraud ring", configured)
    apply_status_report(db_session, token_id=card.token_id, status="blocked", stage=None,
                        occurred_at=utcnow(), source=StatusSource.WEBHOOK)
    db_session.commit()
    built = timeline.build(db_session, story.id)
    by_kind = {e.kind: e for e in built.events}
    assert "fraud ring" in by_kind["card.action"].detail
    assert by_kind["card.status"].title == "Card status: blocked (webhook)"
    assert any(e.kind == "audit" and e.data["action"] == "cards.status.request"
               for e in built.events)


FINCI_EXAMPLE_AUTHORIZATION_ID = "251001435963146785"  # FINCI.md: 18 digits, not Luhn-valid


@pytest.fixture
def numeric_story(driver, bodies, card):
    driver.run(bodies.request(FINCI_EXAMPLE_AUTHORIZATION_ID, 2_500),
               bodies.advice(FINCI_EXAMPLE_AUTHORIZATION_ID, 2_500))
    return driver.transaction(FINCI_EXAMPLE_AUTHORIZATION_ID)


def test_finci_numeric_authorization_ids_are_searched_as_typed(db_session, numeric_story):
    query = timeline.parse_query(FINCI_EXAMPLE_AUTHORIZATION_ID)
    assert query.text == FINCI_EXAMPLE_AUTHORIZATION_ID
    assert [t.id for t in timeline.find(db_session, query)] == [numeric_story.id]


def test_a_luhn_valid_number_typed_into_the_search_is_still_masked():
    query = timeline.parse_query("4111 1111 1111 1111")
    assert "4111111111111111" not in query.text.replace(" ", "").replace("-", "")


def test_trace_finds_a_transaction_by_finci_numeric_authorization_id(cli, numeric_story):
    result, document = cli("trace", FINCI_EXAMPLE_AUTHORIZATION_ID, "--json")
    assert result.exit_code == 0, result.output
    assert document["transaction"]["authorization_id"] == FINCI_EXAMPLE_AUTHORIZATION_ID
