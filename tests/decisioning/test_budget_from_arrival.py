"""The decision budget runs from the request's arrival at the ingress, not from decide(): time
the ingress spends first (a slow pool checkout, a row lock on the INSERT) is time FINCI's 3 s
window has lost too."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from console.decisioning.models import DecisionRecord
from console.decisioning.settings import DecisioningSettings
from console.ingress import services as ingress
from tests.conftest import make_settings
from tests.decisioning.helpers import funded_card, sent_now
from tests.ingress.helpers import deliver, ingress_settings

BUDGET_S = 0.2
INGRESS_DELAY_S = 0.25


@pytest.fixture
def settings(db_factory):
    return make_settings(db_factory.shared_url, ingress=ingress_settings(),
                         decisioning=DecisioningSettings(budget_s=BUDGET_S))


@pytest.fixture(autouse=True)
def card(db_session):
    card = funded_card(db_session, balance=10_000)
    db_session.commit()
    return card


def _record(db_session, finci_id: str) -> DecisionRecord:
    db_session.expire_all()
    return db_session.scalar(select(DecisionRecord)
                             .where(DecisionRecord.authorization_id == finci_id))


def test_time_spent_in_the_ingress_counts_against_the_budget(client, db_session, monkeypatch):
    slow_part_of_storing = ingress.masked_body

    def stalled(*args):
        time.sleep(INGRESS_DELAY_S)  # e.g. waiting for a pooled connection
        return slow_part_of_storing(*args)

    monkeypatch.setattr(ingress, "masked_body", stalled)
    body = sent_now(amount=2_000)
    started = time.monotonic()
    response = deliver(client, body)
    elapsed = time.monotonic() - started

    # An approval this late is not given: the safe default (decline), recorded with why.
    assert response.get_json() == {"status": "error"}
    record = _record(db_session, body["id"])
    assert (record.reason, record.default_used) == ("budget_exceeded", True)
    assert record.latency_ms["ingress"] >= INGRESS_DELAY_S * 1000
    assert record.total_ms >= INGRESS_DELAY_S * 1000
    assert elapsed < INGRESS_DELAY_S + 1.0  # no further waiting once out of time


def test_a_prompt_request_keeps_its_budget_and_shows_the_ingress_stage(client, db_session):
    body = sent_now(amount=2_000)
    assert deliver(client, body).get_json() == {"status": "success"}
    record = _record(db_session, body["id"])
    assert record.reason == "approved"
    assert 0 <= record.latency_ms["ingress"] < BUDGET_S * 1000
    assert record.total_ms >= sum(record.latency_ms.values()) - 1
    assert record.decided_at >= record.received_at
