"""Driving the real lifecycle in tests: bodies as FINCI sends them, stored by the real ingress
(decisioning included) and processed by the real pipeline worker and handlers.

Also the ledger check every lifecycle and card test runs after itself (``assert_ledger_balanced``).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from console.db import Database
from console.decisioning.port import answer_authorization
from console.finci.payload import parse_message
from console.ingress import decisioning_port
from console.ingress import services as ingress
from console.ingress.models import StoredMessage
from console.ingress.verify import Source
from console.ledger import services as ledger
from console.ledger.models import LedgerEntry
from console.pipeline import handlers
from console.pipeline.worker import Worker
from console.transactions import settings as lifecycle_settings
from console.transactions.models import CardTransaction
from console.transactions.settings import LifecycleSettings
from tests.ingress.helpers import (
    IDENTITY_KEY,
    encode,
    ingress_settings,
    message,
    new_webhook_id,
)
from tests.support import ids

T0 = dt.datetime(2026, 11, 27, 9, 0, tzinfo=dt.UTC)
PIPELINE = ingress_settings(max_attempts=3, batch_size=200, lease_s=60.0, poll_interval_s=0.01)


def new_id(prefix: str) -> str:
    return ids.new_id(prefix, 8)


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Bodies:
    """Message bodies for one card, stamped ``step`` seconds apart in FINCI's order."""

    token_id: str
    currency: str = "EUR"
    start: dt.datetime = T0
    step: int = 0
    merchant: str = "Corner Coffee"

    def _at(self, at: dt.datetime | None) -> str:
        if at is None:
            self.step += 1
            at = self.start + dt.timedelta(seconds=self.step)
        return iso(at)

    def _money(self, type_: str, id_: str, amount: int, at, **fields) -> dict:
        body = message(type_, id_=id_, token_id=self.token_id, amount=amount,
                       currency=fields.pop("currency", self.currency), created_at=self._at(at),
                       **fields)
        body["merchant"]["name"] = self.merchant
        return body

    def request(self, auth_id: str, amount: int, at=None, **fields) -> dict:
        return self._money("authorization", auth_id, amount, at, advice=False, **fields)

    def advice(self, auth_id: str, amount: int, code: str = "Approved", at=None,
               **fields) -> dict:
        return self._money("authorization", auth_id, amount, at, advice=True,
                           response_code=code, **fields)

    def reversal(self, auth_id: str | None, amount: int, at=None, id_: str | None = None,
                 **fields) -> dict:
        linked = {"authorization_id": auth_id} if auth_id else {}
        return self._money("reversal", id_ or new_id("rev"), amount, at, **linked, **fields)

    def presentment(self, auth_id: str | None, amount: int, at=None, id_: str | None = None,
                    **fields) -> dict:
        linked = {"authorization_id": auth_id} if auth_id else {}
        return self._money("presentment", id_ or new_id("pres"), amount, at, **linked, **fields)

    def refund(self, auth_id: str | None, amount: int, at=None, id_: str | None = None,
               **fields) -> dict:
        linked = {"authorization_id": auth_id} if auth_id else {}
        return self._money("refund", id_ or new_id("ref"), amount, at, **linked, **fields)

    def card_status(self, status: str, stage: str | None = None, at=None,
                    id_: str | None = None) -> dict:
        body = message("card_status", id_=id_ or new_id("cst"), token_id=self.token_id,
                       token_status=status, created_at=self._at(at))
        if stage:
            body["token_stage"] = stage
        return body


@dataclass
class Driver:
    """Deliver bodies through the real ingress; process them with the real worker."""

    database: Database
    session: Session
    lifecycle: LifecycleSettings = field(default_factory=LifecycleSettings)
    webhook_ids: dict[str, str] = field(default_factory=dict)

    def deliver(self, body: dict, *, webhook_id: str | None = None) -> ingress.Stored:
        raw = encode(body)
        key = f"{body['type']}|{body.get('advice')}|{body['id']}"
        # A redelivery of the same message reuses its webhook-id (B.2), as FINCI's retries do.
        webhook_id = webhook_id or self.webhook_ids.setdefault(key, new_webhook_id())
        delivery = ingress.Delivery(
            webhook_id=webhook_id, webhook_timestamp=int(time.time()), body=raw,
            verified_by="test", source=Source("127.0.0.1", "127.0.0.1", False), headers={},
            received_at=dt.datetime.now(dt.UTC))
        with decisioning_port.using(answer_authorization):
            return ingress.store(self.database, delivery, parse_message(raw), PIPELINE,
                                 identity_key=IDENTITY_KEY)

    def process(self):
        handlers.load()
        with lifecycle_settings.configured(self.lifecycle):
            report = Worker(self.database, PIPELINE, name="lifecycle-test").run(until_idle=True)
        self.session.expire_all()
        return report

    def run(self, *bodies: dict):
        """Deliver each body and process it before the next (one message at a time)."""
        for body in bodies:
            self.deliver(body)
            self.process()

    def transaction(self, authorization_id: str | None = None, *,
                    link_key: str | None = None) -> CardTransaction:
        key = link_key or f"auth:{authorization_id}"
        self.session.expire_all()
        return self.session.scalar(select(CardTransaction)
                                   .where(CardTransaction.link_key == key))

    def stored(self, finci_id: str) -> list[StoredMessage]:
        return list(self.session.scalars(select(StoredMessage)
                                         .where(StoredMessage.finci_id == finci_id)))


def assert_ledger_balanced(session: Session) -> None:
    """Every currency's entries sum to zero, and every account's running totals match."""
    session.expire_all()
    unbalanced = session.execute(select(LedgerEntry.currency, func.sum(LedgerEntry.amount))
                                 .group_by(LedgerEntry.currency)
                                 .having(func.sum(LedgerEntry.amount) != 0)).all()
    assert unbalanced == [], f"ledger out of balance: {unbalanced}"
    assert ledger.verify_balances(session) == []


@pytest.fixture(autouse=True)
def ledger_stays_balanced(request):
    """After every test that touched a database: the ledger balances per currency."""
    if "db_session" not in request.fixturenames:
        yield
        return
    session = request.getfixturevalue("db_session")
    yield
    assert_ledger_balanced(session)
