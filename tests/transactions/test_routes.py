"""Transaction pages: search, timeline (page and fragment), posting failures and their retry."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from console.decisioning.models import DecisionRecord
from console.transactions.models import TransactionMessage, TransactionPosting


def test_search_finds_the_transaction_and_links_its_timeline(as_viewer, driver, bodies):
    driver.run(bodies.request("auth_page", 2_500), bodies.advice("auth_page", 2_500))
    transaction = driver.transaction("auth_page")
    page = as_viewer.get("/transactions/?amount=25.00")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "auth_page" in html and "25.00 EUR" in html and "approved" in html
    assert f'href="/transactions/{transaction.id}"' in html
    fragment = as_viewer.get("/transactions/?amount=25.00",
                             headers={"HX-Request": "true", "HX-Target": "transaction-results"})
    assert "<html" not in fragment.get_data(as_text=True)
    assert 'data-testid="transaction-results"' in fragment.get_data(as_text=True)


def test_a_search_matching_exactly_one_transaction_opens_it(as_viewer, driver, bodies):
    driver.run(bodies.request("auth_one", 2_500), bodies.advice("auth_one", 2_500),
               bodies.request("auth_two", 1_500), bodies.advice("auth_two", 1_500))
    transaction = driver.transaction("auth_one")
    page = as_viewer.get("/transactions/?q=auth_one")
    assert page.status_code == 303
    assert page.headers["Location"] == f"/transactions/{transaction.id}"
    assert as_viewer.get("/transactions/?q=auth_one", follow_redirects=True).status_code == 200
    fragment = as_viewer.get("/transactions/?q=auth_one",
                             headers={"HX-Request": "true", "HX-Target": "transaction-results"})
    assert fragment.status_code == 200
    assert fragment.headers["HX-Redirect"] == f"/transactions/{transaction.id}"


# FINCI's published example id (18 digits, not Luhn-valid), and one of the same form that passes
# the Luhn check (one in ten does): both are ids, searched and shown as typed.
@pytest.mark.parametrize("finci_id", ["251001435963146785", "251001435963146788"])
def test_search_by_finci_numeric_authorization_id_finds_it_as_typed(as_viewer, driver, bodies,
                                                                   finci_id):
    driver.run(bodies.request(finci_id, 2_500), bodies.advice(finci_id, 2_500))
    page = as_viewer.get(f"/transactions/?q={finci_id}")
    assert page.status_code in {200, 303}
    if page.status_code == 303:  # a single match opens it: never the masked-query redirect
        assert "q=" not in page.headers["Location"]
        page = as_viewer.get(page.headers["Location"])
    html = page.get_data(as_text=True)
    assert "No transaction matches" not in html and finci_id in html
    deliveries = as_viewer.get(f"/pipeline/deliveries?q={finci_id}")
    assert deliveries.status_code == 200  # not redirected to a masked query
    html = deliveries.get_data(as_text=True)
    assert html.count(finci_id) >= 2 and "251001********" not in html


def test_state_chips_filter_the_list_by_state(as_viewer, driver, bodies):
    driver.run(bodies.request("auth_ok", 1_000), bodies.advice("auth_ok", 1_000),
               bodies.request("auth_no", 1_500), bodies.advice("auth_no", 1_500, "Declined"))
    start = as_viewer.get("/transactions/").get_data(as_text=True)
    assert 'href="/transactions/?state=approved" data-testid="state-chip"' in start
    assert 'href="/transactions/?state=declined" data-testid="state-chip"' in start
    listed = as_viewer.get("/transactions/?state=approved")
    assert listed.status_code == 200
    html = listed.get_data(as_text=True)
    assert "auth_ok" in html and "auth_no" not in html
    assert '<option value="approved" selected>' in html  # the form keeps the filter
    refused = as_viewer.get("/transactions/?state=lost")
    assert "state must be one of" in refused.get_data(as_text=True)


def test_useful_empty_states(as_viewer, db_session):
    assert "No transaction matches" in as_viewer.get("/transactions/?q=nope").get_data(
        as_text=True)
    assert as_viewer.get("/transactions/?amount=abc").status_code == 200
    assert "amount must be a number" in as_viewer.get("/transactions/?amount=abc").get_data(
        as_text=True)
    assert as_viewer.get("/transactions/999999").status_code == 404


def test_the_timeline_page_and_its_fragment_show_the_same_events(as_viewer, driver, bodies):
    driver.run(bodies.request("auth_tl", 1_000), bodies.advice("auth_tl", 1_000),
               bodies.presentment("auth_tl", 900))
    transaction = driver.transaction("auth_tl")
    page = as_viewer.get(f"/transactions/{transaction.id}").get_data(as_text=True)
    fragment = as_viewer.get(f"/transactions/{transaction.id}/events").get_data(as_text=True)
    for html in (page, fragment):
        assert html.count('data-testid="timeline-event"') >= 6
        assert "Our decision: approve" in html and 'data-testid="rule-trace"' in html
        assert 'data-testid="time-axis"' in html
    assert "<html" in page and "<html" not in fragment


def test_the_timeline_decision_row_links_its_decision(as_viewer, driver, bodies, db_session):
    driver.run(bodies.request("auth_dl", 1_000), bodies.advice("auth_dl", 1_000))
    transaction = driver.transaction("auth_dl")
    decision = db_session.scalar(select(DecisionRecord)
                                 .where(DecisionRecord.authorization_id == "auth_dl"))
    html = as_viewer.get(f"/transactions/{transaction.id}").get_data(as_text=True)
    assert f'href="/decisions/{decision.id}" data-testid="decision-link"' in html
    assert as_viewer.get(f"/decisions/{decision.id}").status_code == 200


def test_a_message_page_links_its_transaction(as_viewer, driver, bodies, db_session):
    driver.run(bodies.request("auth_ml", 1_000))
    transaction = driver.transaction("auth_ml")
    linked = db_session.scalar(select(TransactionMessage.message_id)
                               .where(TransactionMessage.transaction_id == transaction.id))
    html = as_viewer.get(f"/pipeline/messages/{linked}").get_data(as_text=True)
    assert (f'href="/transactions/{transaction.id}" data-testid="transaction-link"' in html)


def test_operators_retry_failed_postings_viewers_cannot(as_viewer, as_operator, driver, bodies,
                                                       db_session):
    driver.run(bodies.request("auth_ot", 1_000), bodies.advice("auth_ot", 1_000),
               bodies.presentment("auth_ot", 2_000, id_="pres_ot"))
    posting = db_session.scalar(select(TransactionPosting)
                                .where(TransactionPosting.finci_id == "pres_ot"))
    failures = as_viewer.get("/transactions/postings").get_data(as_text=True)
    assert "over_hold" in failures and "pres_ot" in failures
    timeline = as_viewer.get(f"/transactions/{posting.transaction_id}").get_data(as_text=True)
    assert 'data-testid="posting-failure"' in timeline and "Retry after repair" not in timeline

    url = f"/transactions/postings/{posting.id}/retry"
    assert as_viewer.post(url, data={"csrf_token": as_viewer.csrf_token}).status_code == 403
    response = as_operator.post(url, data={"csrf_token": as_operator.csrf_token,
                                           "accept": "over_hold"})
    assert response.status_code == 303
    db_session.expire_all()
    assert db_session.get(TransactionPosting, posting.id).status == "posted"
    again = as_operator.post(url, data={"csrf_token": as_operator.csrf_token},
                             headers={"HX-Request": "true"})
    assert again.status_code == 422 and "not failed" in again.get_data(as_text=True)
    assert as_operator.post("/transactions/postings/999999/retry",
                            data={"csrf_token": as_operator.csrf_token}).status_code == 404


def test_a_full_card_number_typed_in_the_search_never_stays_in_the_url(as_viewer, driver,
                                                                        bodies, card,
                                                                        db_session):
    card.masked_number = "5555-55**-****-4444"
    db_session.commit()
    # Two of the card's transactions, so the search lists them rather than opening one.
    driver.run(bodies.presentment(None, 1_000), bodies.presentment(None, 2_000))
    plain = as_viewer.get("/transactions/?q=5555+5555+5555+4444")
    assert plain.status_code == 303
    assert "5555555555554444" not in plain.headers["Location"].replace("+", "").replace(
        "%20", "")
    htmx = as_viewer.get("/transactions/?q=5555555555554444",
                         headers={"HX-Request": "true", "HX-Target": "transaction-results"})
    assert htmx.status_code == 200
    assert htmx.headers["HX-Push-Url"] == "/transactions/?q=5555-55**-****-4444"
    assert card.token_id in htmx.get_data(as_text=True)
