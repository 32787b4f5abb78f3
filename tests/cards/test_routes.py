"""Card pages: list and search, the card page, operator actions through the outbox."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from console.audit import Actor
from console.cards.models import CardAction
from console.flows.services import Flow, set_flow


@pytest.fixture
def settings(settings, lifecycle):
    return settings.replace(lifecycle=lifecycle)


def test_cards_are_listed_and_found_by_token_or_masked_number(as_viewer, card):
    listing = as_viewer.get("/cards/").get_data(as_text=True)
    assert card.token_id in listing and "5454-54**-****-1234" in listing
    for q in [card.token_id, "545454…1234", "5454-54**-****-1234", "100001"]:
        assert card.token_id in as_viewer.get("/cards/", query_string={"q": q}).get_data(
            as_text=True), q
    assert "No card matches" in as_viewer.get("/cards/?q=tok_none").get_data(as_text=True)


def test_the_card_page_offers_only_allowed_actions_to_operators(as_viewer, as_operator, card):
    viewer = as_viewer.get(f"/cards/{card.token_id}").get_data(as_text=True)
    assert 'data-testid="card-status"' in viewer and "Send to FINCI" not in viewer
    operator = as_operator.get(f"/cards/{card.token_id}").get_data(as_text=True)
    assert "Send to FINCI" in operator
    assert 'value="deactivate"' in operator and 'value="reactivate"' not in operator
    assert as_viewer.get("/cards/tok_unknown").status_code == 404


def test_an_operator_action_is_committed_as_an_outbox_row_and_audited(
        as_operator, as_viewer, card, db_session, book):
    url = f"/cards/{card.token_id}/actions"
    form = {"csrf_token": as_operator.csrf_token, "action": "block", "reason": "fraud ring"}
    assert as_viewer.post(url, data=dict(form, csrf_token=as_viewer.csrf_token)
                          ).status_code == 403
    response = as_operator.post(url, data=form)
    assert response.status_code == 303
    row = db_session.scalar(select(CardAction).where(CardAction.card_id == card.id))
    assert (row.status, row.target_status, row.reason) == ("pending", "blocked", "fraud ring")
    assert book.get(card.token_id).token_status == "active"  # sent later, by the scheduler
    again = as_operator.post(url, data=form, headers={"HX-Request": "true"})
    assert again.status_code == 422
    assert "already waiting" in again.get_data(as_text=True)


def test_refused_actions_say_why(as_operator, card, db_session):
    url = f"/cards/{card.token_id}/actions"
    response = as_operator.post(url, data={"csrf_token": as_operator.csrf_token,
                                           "action": "reactivate", "reason": "x"})
    assert response.status_code == 422 and "already active" in response.get_data(as_text=True)
    set_flow(db_session, Actor.system("test"), Flow.CARD_ACTIONS, enabled=False, reason="drill")
    db_session.commit()
    page = as_operator.get(f"/cards/{card.token_id}").get_data(as_text=True)
    assert "switched off" in page and "Queue for FINCI" in page and "Send to FINCI" not in page
    response = as_operator.post(url, data={"csrf_token": as_operator.csrf_token,
                                           "action": "block", "reason": "x"},
                                headers={"HX-Request": "true"})
    assert response.status_code == 200
    panel = response.get_data(as_text=True)
    assert "Queued until card actions are back on: block" in panel
    row = db_session.scalar(select(CardAction).where(CardAction.card_id == card.id))
    assert row.status == "pending"


def test_failed_actions_are_listed_for_operators(as_viewer, card, db_session):
    db_session.add(CardAction(card_id=card.id, token_id=card.token_id, action="block",
                              from_status="active", target_status="blocked", reason="x",
                              requested_by="someone", requested_at=card.created_at,
                              status="failed", attempts=5, next_attempt_at=card.created_at,
                              last_error="http; HTTP 503; service_unavailable"))
    db_session.commit()
    page = as_viewer.get("/cards/actions").get_data(as_text=True)
    assert "service_unavailable" in page and card.token_id in page


def test_a_full_card_number_searched_is_masked_before_it_is_echoed(as_viewer, card, db_session):
    card.masked_number = "5555-55**-****-4444"
    db_session.commit()
    response = as_viewer.get("/cards/?q=5555555555554444")
    assert response.status_code == 303 and response.headers["Location"] == (
        "/cards/?q=5555-55**-****-4444")
    page = as_viewer.get(response.headers["Location"]).get_data(as_text=True)
    assert card.token_id in page and 'value="5555-55**-****-4444"' in page
