"""The "history" link on each audited object's page (templates/audit/_history.html): it opens
the audit log filtered to that object's events, under the target type and id its audit call
site records, and only someone who may read the audit log sees it."""

from __future__ import annotations

import html
import re

import pytest
from sqlalchemy import select

from console.audit import Actor, AuditAction, Target, record
from console.auth.models import User
from console.cards.services import issue_funded_card
from console.db import utcnow
from console.decisioning.config import save_config
from console.flows.services import Flow, set_flow
from console.keys import card_data_keys
from console.keys.inventory import Kind
from console.keys.models import Credential
from console.secrets.memory import MemorySecretStore
from console.transactions.models import TransactionPosting
from console.transactions.settings import LifecycleSettings
from tests.support.ids import letters, new_id
from tests.transactions.support import Bodies, Driver

ACTOR = Actor.cli("history-test")
LINK = re.compile(r'<a href="([^"]+)" data-testid="history-link" '
                  r'data-target-type="([^"]+)" data-target="([^"]+)"')


def _event(session, target_type: str, target_id: str) -> str:
    """An audit event about one object; the returned marker is in its details only."""
    marker = f"marker-{letters()}"
    record(session, actor=ACTOR, action=AuditAction.AUDIT_LOG_VIEW,
           target=Target(target_type, target_id), details={"marker": marker})
    session.flush()
    return marker


def _follow(client, page: str, target_type: str, target_id: str) -> str:
    """Find the object's history link on ``page``, follow it, return the audit log page."""
    links = {(kind, html.unescape(tid)): html.unescape(href)
             for href, kind, tid in LINK.findall(page)}
    assert (target_type, target_id) in links, links
    response = client.get(links[(target_type, target_id)])
    assert response.status_code == 200
    return response.get_data(as_text=True)


def _check(session, client, path: str, target_type: str, target_id: str, other_id: str):
    """Own event listed, another object's of the same type (and one of another type with the
    same id) not."""
    mine = _event(session, target_type, target_id)
    other = _event(session, target_type, other_id)
    lookalike = _event(session, "other_kind", target_id)
    session.commit()
    response = client.get(path)
    assert response.status_code == 200
    log = _follow(client, response.get_data(as_text=True), target_type, target_id)
    assert mine in log
    assert other not in log and lookalike not in log


def test_card_page_links_the_cards_history(as_compliance, db_session):
    card = issue_funded_card(db_session, token_id=new_id("tok"), balance=1_000)
    _check(db_session, as_compliance, f"/cards/{card.token_id}", "card", card.token_id,
           new_id("tok"))


@pytest.fixture
def driver(test_database, db_session):
    return Driver(test_database, db_session, LifecycleSettings())


def test_transaction_page_links_its_cards_history(as_compliance, db_session, driver):
    card = issue_funded_card(db_session, token_id=new_id("tok"), balance=100_000)
    auth_id = new_id("auth")
    bodies = Bodies(card.token_id)
    driver.run(bodies.request(auth_id, 2_500), bodies.advice(auth_id, 2_500))
    transaction = driver.transaction(auth_id)
    _check(db_session, as_compliance, f"/transactions/{transaction.id}", "card", card.token_id,
           new_id("tok"))


def test_message_page_links_the_messages_history(as_compliance, db_session, driver):
    card = issue_funded_card(db_session, token_id=new_id("tok"), balance=100_000)
    auth_id = new_id("auth")
    driver.run(Bodies(card.token_id).request(auth_id, 2_500))
    (stored,) = driver.stored(auth_id)
    _check(db_session, as_compliance, f"/pipeline/messages/{stored.id}", "message",
           str(stored.id), str(stored.id + 1000))


def test_rules_page_links_each_versions_history(as_compliance, db_session):
    save_config(db_session, ACTOR, {"blocked_countries": ["KP"]}, reason="CHG-1")
    second = save_config(db_session, ACTOR, {"blocked_countries": []}, reason="CHG-2")
    db_session.commit()
    _check(db_session, as_compliance, "/decisions/rules", "decisioning_rules",
           str(second.version), str(second.version - 1))


def test_flows_page_links_each_flows_history(as_compliance, db_session):
    flows = list(Flow)
    set_flow(db_session, ACTOR, flows[0], enabled=False, reason="CHG-1 history test")
    _check(db_session, as_compliance, "/flows/", "flow", flows[0].value, flows[1].value)
    # The switch's own event (console.flows.services) is under the same target as the link's.
    log = _follow(as_compliance, as_compliance.get("/flows/").get_data(as_text=True), "flow",
                  flows[0].value)
    assert AuditAction.FLOW_SWITCH_DISABLE.value in log


def test_users_page_links_each_users_history(as_admin, sign_in, app, db_session):
    sign_in(app.test_client(), "viewer")
    admin = db_session.query(User).filter_by(username="admin").one()
    _check(db_session, as_admin, "/users/", "user", admin.username, "viewer")


def test_keys_page_links_each_credentials_history(as_admin, db_session):
    at = utcnow()
    credential = Credential(kind=Kind.WEBHOOK_SECRET.value, name=new_id("cred"),
                            environment="sandbox", fingerprint=f"fp-{letters()}",
                            store_name=new_id("cred"), status="active", created_at=at,
                            created_by="test", activated_at=at)
    db_session.add(credential)
    db_session.flush()
    _check(db_session, as_admin, "/keys/", "credential", str(credential.id),
           str(credential.id + 1000))


def test_card_data_page_links_each_keys_history(as_admin, app, db_session):
    store = MemorySecretStore()
    app.extensions["secrets.store"] = store
    key = card_data_keys.generate(db_session, store, environment="sandbox", actor=ACTOR)
    db_session.commit()
    _check(db_session, as_admin, "/keys/card-data/", "card_data_key", key.kid, new_id("kid"))


def test_without_the_audit_permission_no_history_link(as_viewer, db_session):
    card = issue_funded_card(db_session, token_id=new_id("tok"), balance=1_000)
    db_session.commit()
    page = as_viewer.get(f"/cards/{card.token_id}").get_data(as_text=True)
    assert 'data-testid="history-link"' not in page
    assert 'data-testid="history-link"' not in as_viewer.get("/flows/").get_data(as_text=True)


def test_transaction_page_links_each_failed_postings_history(as_compliance, db_session, driver):
    token, presentment = new_id("tok"), new_id("pres")
    driver.run(Bodies(token).presentment(None, 1_200, id_=presentment))  # unknown card: fails
    transaction = driver.transaction(link_key=f"presentment:{presentment}")
    posting = db_session.scalar(select(TransactionPosting).where(
        TransactionPosting.finci_id == presentment))
    assert posting.status == "failed"
    _check(db_session, as_compliance, f"/transactions/{transaction.id}", "transaction_posting",
           str(posting.id), str(posting.id + 1000))
