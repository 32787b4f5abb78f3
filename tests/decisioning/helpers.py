"""Builders for decisioning tests: authorization messages, funded cards, a controllable clock."""

from __future__ import annotations

import datetime as dt
import json

from console.cards.services import issue_funded_card
from console.decisioning.settings import DecisioningSettings
from console.finci.payload import WebhookMessage, parse_message
from tests.ingress.helpers import message
from tests.support.ids import new_id

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
TOKEN = "tok_dec"


def authorization_body(*, token_id: str = TOKEN, amount: int = 1250, currency: str = "EUR",
                       advice: bool = False, response_code: str | None = None,
                       id_: str | None = None, mcc: str = "5411", country: str = "DE",
                       created_at: dt.datetime = NOW) -> dict:
    body = message("authorization", id_=id_ or new_id("auth", 16), advice=advice,
                   token_id=token_id, amount=amount, currency=currency,
                   created_at=created_at.isoformat().replace("+00:00", "Z"))
    body["merchant"]["mcc"] = mcc
    body["merchant"]["country"] = country
    if advice:
        body["response_code"] = response_code or "Approved"
    return body


def sent_now(**fields) -> dict:
    """An authorization request stamped now, as FINCI stamps what it sends: for tests through
    the real ingress and clock, where an old ``created_at`` would make our answer "late"."""
    return authorization_body(created_at=dt.datetime.now(dt.UTC), **fields)


def authorization(**kwargs) -> WebhookMessage:
    return parse_message(json.dumps(authorization_body(**kwargs)).encode())


def advice_for(request: WebhookMessage, response_code: str = "Approved",
               amount: int | None = None) -> WebhookMessage:
    body = dict(request.raw)
    body.update(advice=True, response_code=response_code)
    if amount is not None:
        body["amount"] = amount
    return parse_message(json.dumps(body).encode())


def funded_card(session, token_id: str = TOKEN, *, balance: int = 100_000,
                currency: str = "EUR", status: str = "active", account_id: int | None = None):
    return issue_funded_card(session, token_id=token_id, currency=currency, balance=balance,
                             status=status, account_id=account_id)


def settings(**overrides) -> DecisioningSettings:
    return DecisioningSettings(**overrides)


class FakeClock:
    """Wall time fixed at ``now``; monotonic time moves only when told (or by ``tick`` per read)."""

    def __init__(self, now: dt.datetime = NOW, tick: float = 0.0):
        self._now = now
        self._mono = 1000.0
        self.tick = tick

    def now(self) -> dt.datetime:
        return self._now

    def monotonic(self) -> float:
        self._mono += self.tick
        return self._mono

    def advance(self, seconds: float) -> None:
        self._mono += seconds
        self._now += dt.timedelta(seconds=seconds)
