import datetime as dt

import pytest
from sqlalchemy import select

from console.audit.models import AuditEvent
from console.flows.services import Flow, is_enabled
from console.settings import Environment


def _turn_off(client, flow="decisioning", **form):
    data = {"csrf_token": client.csrf_token, "enabled": "false", "reason": "INC-7 issuer outage"}
    data.update(form)
    return client.post(f"/flows/{flow}", data=data, headers={"HX-Request": "true"})


def test_every_panel_role_sees_the_switches(as_viewer):
    page = as_viewer.get("/flows/")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert "Decisioning" in body and "Turn off" not in body  # viewers cannot flip


def test_every_flow_is_listed_with_what_happens_while_it_is_off(as_viewer):
    from console.flows.services import OFF_BEHAVIOUR

    body = as_viewer.get("/flows/").get_data(as_text=True)
    for flow in Flow:
        assert f'data-flow="{flow.value}"' in body
        assert OFF_BEHAVIOUR[flow] in body


def test_oncall_turns_a_flow_off_with_a_reason_and_it_is_audited(as_oncall, db_session):
    response = _turn_off(as_oncall, revert_minutes="60")
    assert response.status_code == 200
    assert "OFF" in response.get_data(as_text=True)
    assert not is_enabled(db_session, Flow.DECISIONING)
    event = db_session.scalars(select(AuditEvent).where(
        AuditEvent.action == "flows.switch.disable")).one()
    assert event.actor_type == "user" and event.target_id == "decisioning"


def test_operators_cannot_flip_switches(as_operator, db_session):
    assert _turn_off(as_operator).status_code == 403
    assert is_enabled(db_session, Flow.DECISIONING)


@pytest.mark.parametrize(("form", "status"), [
    ({"reason": ""}, 422), ({"enabled": "maybe"}, 400), ({"revert_minutes": "7"}, 400),
])
def test_bad_input_is_refused_and_changes_nothing(as_oncall, db_session, form, status):
    assert _turn_off(as_oncall, **form).status_code == status
    assert is_enabled(db_session, Flow.DECISIONING)


def test_unknown_flow_is_404(as_oncall):
    assert _turn_off(as_oncall, flow="everything").status_code == 404


def test_production_requires_a_recent_login(app, settings, test_database, sign_in, db_session):
    from console import create_app

    production = create_app(settings.replace(environment=Environment.PRODUCTION),
                            database=test_database)
    production.test_client_class = app.test_client_class
    stale = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30)
    client = sign_in(production.test_client(), "oncall", auth_time=stale)
    response = _turn_off(client)
    assert response.status_code == 401
    assert is_enabled(db_session, Flow.DECISIONING)
    fresh = sign_in(production.test_client(), "oncall")
    assert _turn_off(fresh).status_code == 200


# --- banner ------------------------------------------------------------------------------------

def _off(db_session, flow=Flow.DECISIONING, **kwargs):
    from console.audit import Actor
    from console.flows.services import set_flow

    set_flow(db_session, Actor.cli("oncall-anna"), flow, enabled=False, reason="INC-77 outage",
             **kwargs)
    db_session.commit()


def test_the_banner_is_on_every_signed_in_page_while_a_flow_is_off(as_viewer, db_session):
    assert 'data-testid="flows-off-banner"' not in as_viewer.get("/").get_data(as_text=True)
    _off(db_session, revert_after=dt.timedelta(minutes=60))
    for path in ("/", "/pipeline/deliveries", "/flows/"):
        body = as_viewer.get(path).get_data(as_text=True)
        assert 'data-testid="flows-off-banner"' in body, path
        assert "Decisioning" in body and "oncall-anna" in body and "INC-77 outage" in body
        assert "turns back on at" in body and 'href="/flows/"' in body
        assert 'data-testid="revert-soon"' not in body


def test_the_banner_warns_when_the_auto_revert_is_near(as_viewer, db_session):
    _off(db_session, revert_after=dt.timedelta(minutes=3))
    body = as_viewer.get("/").get_data(as_text=True)
    assert 'data-testid="revert-soon"' in body
    assert 'data-testid="revert-warning"' not in body  # the form's warning is for on-call
    assert 'data-testid="revert-warning"' not in as_viewer.get("/flows/").get_data(as_text=True)


def test_the_flows_page_warns_on_call_before_the_auto_revert(as_oncall, db_session):
    _off(db_session, revert_after=dt.timedelta(minutes=4))
    assert 'data-testid="revert-warning"' in as_oncall.get("/flows/").get_data(as_text=True)


def test_anonymous_pages_show_no_banner_and_still_work(client, db_session):
    _off(db_session)
    response = client.get("/auth/login")
    assert response.status_code == 200
    assert 'data-testid="flows-off-banner"' not in response.get_data(as_text=True)


def test_an_unreadable_switch_state_does_not_break_the_page(as_viewer, db_session, monkeypatch):
    from sqlalchemy.exc import OperationalError

    from console.flows import routes

    def unreachable(_session):
        raise OperationalError("SELECT", {}, Exception("connection refused"))

    monkeypatch.setattr(routes, "off_states", unreachable)
    response = as_viewer.get("/pipeline/deliveries")
    assert response.status_code == 200
    assert "Kill switch state could not be read" in response.get_data(as_text=True)


# --- four eyes ---------------------------------------------------------------------------------

@pytest.fixture
def four_eyes(app):
    from dataclasses import replace

    settings = app.extensions["settings"]
    app.extensions["settings"] = settings.replace(flows=replace(
        settings.flows, require_approval=frozenset({"decisioning"})))
    return app


def _decide(client, request_id, decision):
    return client.post(f"/flows/requests/{request_id}/{decision}",
                       data={"csrf_token": client.csrf_token}, headers={"HX-Request": "true"})


def _pending_id(db_session):
    from console.flows.models import FlowChangeRequest

    db_session.expire_all()
    return db_session.scalars(select(FlowChangeRequest.id).where(
        FlowChangeRequest.status == "pending")).one()


def test_a_four_eyes_flow_files_a_request_another_oncall_approves(four_eyes, sign_in,
                                                                   db_session):
    anna = sign_in(four_eyes.test_client(), "oncall")
    bob = sign_in(four_eyes.test_client(), "oncall2")
    response = _turn_off(anna)
    assert response.status_code == 200 and "another on-call engineer must approve" in \
        response.get_data(as_text=True)
    assert is_enabled(db_session, Flow.DECISIONING)
    request_id = _pending_id(db_session)
    mine = anna.get("/flows/").get_data(as_text=True)
    assert 'data-testid="request-cancel"' in mine and 'data-testid="request-approve"' not in mine
    theirs = bob.get("/flows/").get_data(as_text=True)
    assert 'data-testid="request-approve"' in theirs and 'data-testid="request-reject"' in theirs
    # The requester cannot approve their own request, even by posting directly.
    assert _decide(anna, request_id, "approve").status_code == 422
    assert _decide(anna, request_id, "reject").status_code == 422
    assert is_enabled(db_session, Flow.DECISIONING)
    assert _decide(bob, request_id, "approve").status_code == 200
    db_session.expire_all()
    assert not is_enabled(db_session, Flow.DECISIONING)
    event = db_session.scalars(select(AuditEvent).where(
        AuditEvent.action == "flows.switch.disable")).one()
    assert event.actor_id == "oncall2" and '"requested_by":"oncall"' in event.details


def test_the_requester_cancels_and_viewers_see_requests_without_buttons(four_eyes, sign_in,
                                                                         db_session):
    anna = sign_in(four_eyes.test_client(), "oncall")
    viewer = sign_in(four_eyes.test_client(), "viewer")
    _turn_off(anna)
    request_id = _pending_id(db_session)
    page = viewer.get("/flows/").get_data(as_text=True)
    assert 'data-testid="flow-requests"' in page and "request-approve" not in page
    assert _decide(viewer, request_id, "approve").status_code == 403
    assert _decide(anna, request_id, "maybe").status_code == 404
    assert _decide(anna, request_id, "cancel").status_code == 200
    assert _decide(anna, request_id, "cancel").status_code == 422  # already cancelled


def test_approving_needs_a_recent_login_in_production(app, settings, test_database, sign_in,
                                                      db_session):
    from console import create_app
    from console.flows.settings import FlowsSettings
    from console.settings import Environment

    production = create_app(settings.replace(
        environment=Environment.PRODUCTION,
        flows=FlowsSettings(require_approval=frozenset({"decisioning"}))), database=test_database)
    production.test_client_class = app.test_client_class
    assert _turn_off(sign_in(production.test_client(), "oncall")).status_code == 200
    request_id = _pending_id(db_session)
    stale = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30)
    late = sign_in(production.test_client(), "oncall2", auth_time=stale)
    assert _decide(late, request_id, "approve").status_code == 401
    assert is_enabled(db_session, Flow.DECISIONING)


# --- blast radius -----------------------------------------------------------------------------

def _seed_last_hour(db_session, now):
    """Two authorization requests (EUR, GBP), three messages, a presentment and a refund, a card
    action; plus one of each two hours ago, which must not count."""
    from console.cards.models import CardAction
    from console.cards.services import issue_funded_card
    from console.decisioning.models import DecisionRecord
    from console.ingress.models import StoredMessage
    from console.transactions.models import CardTransaction, TransactionPosting

    card = issue_funded_card(db_session, token_id="tok_blast", balance=0)
    old = now - dt.timedelta(hours=2)
    recent = now - dt.timedelta(minutes=10)

    def message(n, at):
        row = StoredMessage(webhook_id=f"msg_blast_{n}", business_key=f"blast:{n}",
                            type="presentment", known_type=True, finci_id=f"blast{n}",
                            finci_created_at=at, webhook_timestamp=int(at.timestamp()),
                            received_at=at, body="{}", body_sha256="0" * 64,
                            verified_by="test", answer_status=200, answer_body="{}",
                            next_attempt_at=at)
        db_session.add(row)
        db_session.flush()
        return row

    messages = [message(n, recent) for n in range(3)] + [message(9, old)]
    transaction = CardTransaction(link_key="presentment:blast", state="posted",
                                  first_event_at=recent, last_event_at=recent)
    db_session.add(transaction)
    db_session.flush()
    for n, (amount, at, kind) in enumerate([(1250, recent, "presentment"),
                                            (250, recent, "refund"), (9999, old, "presentment")]):
        db_session.add(TransactionPosting(
            transaction_id=transaction.id, message_id=messages[n if at == recent else 3].id,
            kind=kind, finci_id=f"p{n}", amount=amount, currency="EUR", status="skipped",
            created_at=at))
    for n, (amount, currency, at) in enumerate([(1000, "EUR", recent), (500, "GBP", recent),
                                                (7777, "EUR", old)]):
        db_session.add(DecisionRecord(
            authorization_id=f"auth_blast_{n}", origin="request", mode="integrator",
            token_id="tok_blast", amount=amount, currency=currency, finci_created_at=at,
            received_at=at, answer="error", reason="kill_switch"))
    for at in (recent, old):
        db_session.add(CardAction(card_id=card.id, token_id=card.token_id, action="block",
                                  from_status="active", target_status="blocked", reason="x",
                                  requested_by="someone", requested_at=at, status="sent",
                                  next_attempt_at=at))
    db_session.commit()


def test_the_last_hours_volume_is_shown_next_to_each_switch(as_oncall, db_session):
    from console.db import utcnow
    from console.flows.blast_radius import last_hour

    now = utcnow()
    _seed_last_hour(db_session, now)
    impacts = last_hour(db_session, now)
    assert (impacts[Flow.DECISIONING].count, impacts[Flow.DECISIONING].amounts) == (
        2, (("EUR", 1000), ("GBP", 500)))
    assert impacts[Flow.PROCESSING].count == 3
    assert (impacts[Flow.LEDGER_POSTING].count, impacts[Flow.LEDGER_POSTING].amounts) == (
        2, (("EUR", 1500),))
    assert impacts[Flow.CARD_ACTIONS].count == 1
    assert impacts[Flow.REVEAL].count == 0
    body = as_oncall.get("/flows/").get_data(as_text=True)
    assert "2 authorization requests: 10.00 EUR, 5.00 GBP" in body
    assert "3 messages received" in body and "2 presentments and refunds: 15.00 EUR" in body
    assert "1 card actions requested" in body and "no reveals in the last hour" in body


def test_the_polled_panel_is_the_state_table_only(as_oncall, db_session):
    _off(db_session)
    body = as_oncall.get("/flows/panel", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert 'data-testid="flow-states"' in body and 'data-testid="flow-impact"' in body
    assert "<form" not in body and "INC-77 outage" in body
