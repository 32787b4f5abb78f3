"""Decisioning pages: who sees what, the rule trace and latency, divergences, rule changes."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from console.audit.models import AuditEvent
from console.decisioning.advice import apply_advice
from console.decisioning.config import active_config
from console.decisioning.models import DecisionRecord
from console.decisioning.services import decide
from tests.decisioning.helpers import FakeClock, advice_for, authorization, funded_card, settings

PAGES = ["/decisions/", "/decisions/divergences", "/decisions/rules", "/decisions/summary"]


@pytest.fixture
def decided(db_session):
    """One approval FINCI then declined (a divergence) and one plain decline."""
    funded_card(db_session, balance=5_000)
    approved = authorization(amount=2_000)
    decide(db_session, approved, settings(), FakeClock())
    apply_advice(db_session, advice_for(approved, "InsufficientFunds"), settings())
    declined = authorization(amount=9_000)
    decide(db_session, declined, settings(), FakeClock())
    db_session.commit()
    return approved, declined


def record(db_session, authorization_id) -> DecisionRecord:
    return db_session.scalar(select(DecisionRecord)
                             .where(DecisionRecord.authorization_id == authorization_id))


@pytest.mark.parametrize("path", PAGES)
def test_every_panel_role_can_read_the_pages(as_viewer, path):
    assert as_viewer.get(path).status_code == 200


@pytest.mark.parametrize("path", PAGES)
def test_signed_out_users_cannot(client, path):
    assert client.get(path).status_code in (302, 401, 403)


def test_the_list_shows_answers_reasons_and_advice_outcomes(as_viewer, decided):
    body = as_viewer.get("/decisions/").get_data(as_text=True)
    approved, declined = decided
    assert approved.id in body and declined.id in body
    assert "insufficient funds" in body and "FINCI declined our approval" in body
    only_declines = as_viewer.get("/decisions/?answer=error",
                                  headers={"HX-Request": "true", "HX-Target": "decision-rows"})
    text = only_declines.get_data(as_text=True)
    assert declined.id in text and approved.id not in text and "<html" not in text


@pytest.mark.parametrize("query", ["answer=maybe", "reason=nope", "outcome=x", "before=1x",
                                   "window=2h", "token=" + "t" * 65])
def test_bad_filters_are_refused(as_viewer, query):
    path = "/decisions/divergences" if query.startswith("window") else "/decisions/"
    assert as_viewer.get(f"{path}?{query}").status_code == 400


def test_the_detail_shows_the_rule_trace_latency_and_hold(as_viewer, decided, db_session):
    approved, _ = decided
    page = as_viewer.get(f"/decisions/{record(db_session, approved.id).id}")
    body = page.get_data(as_text=True)
    assert page.status_code == 200
    for text in ("Rule trace", "card_active", "velocity", "Latency", "<svg", "released",
                 "advice_declined", "FINCI declined our approval"):
        assert text in body, text
    assert as_viewer.get("/decisions/999999").status_code == 404


def test_divergences_list_only_divergent_authorizations(as_viewer, decided):
    approved, declined = decided
    body = as_viewer.get("/decisions/divergences").get_data(as_text=True)
    assert approved.id in body and declined.id not in body


def test_viewers_see_the_rules_but_not_the_form(as_viewer):
    body = as_viewer.get("/decisions/rules").get_data(as_text=True)
    assert "Rules in force" in body and "Change the rules" not in body


def _form(client, **overrides):
    data = {"csrf_token": client.csrf_token, "version": "0", "balance_enabled": "on",
            "limits_enabled": "on", "limits": "card day EUR 50000\naccount month EUR 900000 7",
            "timezone": "Europe/Berlin", "mcc_enabled": "on", "blocked_mccs": "7995, 6051",
            "country_enabled": "on", "blocked_countries": "kp", "velocity_enabled": "on",
            "velocity_max": "12", "velocity_window_s": "60", "reason": "CHG-1 initial rules"}
    data.update(overrides)
    return data


def test_an_admin_changes_the_rules_and_it_is_audited(as_admin, db_session):
    assert "Change the rules" in as_admin.get("/decisions/rules").get_data(as_text=True)
    response = as_admin.post("/decisions/rules", data=_form(as_admin))
    assert response.status_code == 303
    config = active_config(db_session)
    assert config.version == 1 and config.blocked_countries == {"KP"}
    assert config.limit(*_card_day()) == 50_000 and config.timezone == "Europe/Berlin"
    event = db_session.scalars(select(AuditEvent).where(
        AuditEvent.action == "decisioning.rules.update")).one()
    assert event.actor_type == "user" and "CHG-1" in event.details
    assert "blocked_countries" in event.details  # the before/after diff
    assert "version 1" in as_admin.get("/decisions/rules").get_data(as_text=True)


def _card_day():
    from console.decisioning.config import LimitPeriod, LimitScope

    return LimitScope.CARD, LimitPeriod.DAY, "EUR", "tok_any"


@pytest.mark.parametrize(("overrides", "problem"), [
    ({"reason": ""}, "reason"),
    ({"limits": "card fortnight EUR 5"}, "period"),
    ({"limits": "card day EUR"}, "limits line 1"),
    ({"blocked_mccs": "79"}, "MCC"),
    ({"velocity_max": "0"}, "velocity_max"),
    ({"timezone": "Mars/Olympus"}, "timezone"),
])
def test_invalid_rules_are_refused_with_every_problem_named(as_admin, db_session, overrides,
                                                           problem):
    response = as_admin.post("/decisions/rules", data=_form(as_admin, **overrides))
    assert response.status_code == 422
    assert problem in response.get_data(as_text=True)
    assert active_config(db_session).version == 0


def test_a_stale_form_is_refused_instead_of_overwriting_a_newer_version(as_admin, db_session):
    assert as_admin.post("/decisions/rules", data=_form(as_admin)).status_code == 303
    stale = as_admin.post("/decisions/rules", data=_form(as_admin, blocked_mccs=""))
    assert stale.status_code == 409
    assert active_config(db_session).blocked_mccs == {"7995", "6051"}


@pytest.mark.parametrize("persona", ["viewer", "operator", "oncall", "compliance"])
def test_only_admins_change_the_rules(app, sign_in, db_session, persona):
    client = sign_in(app.test_client(), persona)
    assert client.post("/decisions/rules", data=_form(client)).status_code == 403
    assert active_config(db_session).version == 0


def test_rule_changes_need_the_csrf_token(as_admin):
    data = _form(as_admin)
    del data["csrf_token"]
    assert as_admin.post("/decisions/rules", data=data).status_code == 403


def test_the_navigation_offers_decisions(as_viewer):
    assert 'href="/decisions/"' in as_viewer.get("/").get_data(as_text=True)


def test_a_decision_links_its_card(as_viewer, decided, db_session):
    approved, _declined = decided
    found = record(db_session, approved.id)
    body = as_viewer.get(f"/decisions/{found.id}").get_data(as_text=True)
    assert f'href="/cards/{found.token_id}" data-testid="decision-card"' in body
    assert as_viewer.get(f"/cards/{found.token_id}").status_code == 200


def test_a_decision_links_its_transaction_when_there_is_one(as_viewer, decided, db_session):
    from console.db import utcnow
    from console.transactions.models import CardTransaction
    approved, declined = decided
    now = utcnow()
    transaction = CardTransaction(link_key=f"auth:{approved.id}", authorization_id=approved.id,
                                  state="approved", first_event_at=now, last_event_at=now)
    db_session.add(transaction)
    db_session.commit()
    body = as_viewer.get(f"/decisions/{record(db_session, approved.id).id}").get_data(
        as_text=True)
    assert f'href="/transactions/{transaction.id}" data-testid="decision-transaction"' in body
    other = as_viewer.get(f"/decisions/{record(db_session, declined.id).id}").get_data(
        as_text=True)
    assert 'data-testid="decision-transaction"' not in other
