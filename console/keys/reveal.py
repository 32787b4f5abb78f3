"""Card-data reveal: the one path by which a person sees a full card number.

Masked (first 6, last 4) everywhere else. ``reveal`` needs a written reason, is rate-limited
per person, decrypts the card's stored JWE (console.keys.jwe) and returns the number to the
caller; the route shows it for ``REVEAL_SECONDS`` and sends ``Cache-Control: no-store``. Every
attempt is audited (reason, actor, card, key id, outcome), never the number. Who may reveal,
step-up and the kill switch are the route's decorators (console.cards.reveal_routes).

The rate limit counts this person's successful reveals in the audit log over
``RATE_WINDOW``: the log is already written in the same transaction, is shared by every
process and cannot be reset by the user.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import NoReturn

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from console.audit.actions import AuditAction, Outcome
from console.audit.models import AuditEvent
from console.audit.services import Actor, Target, record
from console.cards.models import Card
from console.db import utcnow
from console.keys import jwe
from console.keys.card_data_models import CardDataEnvelope
from console.secrets.store import SecretStore
from console.security.redaction import mask_pan

REVEAL_SECONDS = 30
RATE_LIMIT = 5
RATE_WINDOW = dt.timedelta(hours=1)
REASON_MIN, REASON_MAX = 10, 500


class RevealRefused(Exception):
    """``status`` is the HTTP answer, ``message`` is for the person (never card data)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Revealed:
    number: str
    expiry: str | None
    until: dt.datetime

    @property
    def masked(self) -> str:
        return mask_pan(self.number)

    def __repr__(self) -> str:  # a stray log of this object shows no number
        return f"Revealed({self.masked}, until={self.until.isoformat()})"


def store_envelope(session: Session, card: Card, token: str,
                   at: dt.datetime | None = None) -> CardDataEnvelope:
    """Keep the JWE FINCI sent for ``card`` (header checked, nothing decrypted)."""
    kid = jwe.header(token)["kid"]
    envelope = session.scalar(select(CardDataEnvelope).where(CardDataEnvelope.card_id == card.id))
    if envelope is None:
        envelope = CardDataEnvelope(card_id=card.id)
        session.add(envelope)
    envelope.kid, envelope.token, envelope.received_at = kid, token, at or utcnow()
    session.flush()
    return envelope


def envelope_for(session: Session, card: Card) -> CardDataEnvelope | None:
    return session.scalar(select(CardDataEnvelope).where(CardDataEnvelope.card_id == card.id))


def recent_reveals(session: Session, actor: Actor, at: dt.datetime) -> int:
    return session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == AuditAction.CARDS_CARD_DATA_REVEAL.value,
        AuditEvent.actor_id == actor.id, AuditEvent.outcome == Outcome.SUCCESS.value,
        AuditEvent.occurred_at > at - RATE_WINDOW)) or 0


def check_reason(reason: str | None) -> str:
    text = (reason or "").strip()
    if not REASON_MIN <= len(text) <= REASON_MAX:
        raise RevealRefused(400, f"Write why you need the full number ({REASON_MIN} to "
                                 f"{REASON_MAX} characters).")
    return text


def reveal(session: Session, store: SecretStore, card: Card, *, actor: Actor, reason: str,
           environment: str, at: dt.datetime | None = None) -> Revealed:
    text = check_reason(reason)
    at = at or utcnow()
    target = Target("card", card.token_id)
    envelope = envelope_for(session, card)

    def refuse(outcome: Outcome, code: str, status: int, message: str) -> NoReturn:
        record(session, actor=actor, action=AuditAction.CARDS_CARD_DATA_REVEAL, target=target,
               outcome=outcome, at=at,
               details={"reason": text, "refused": code,
                        "kid": envelope.kid if envelope else None})
        raise RevealRefused(status, message)

    if recent_reveals(session, actor, at) >= RATE_LIMIT:
        refuse(Outcome.DENIED, "rate_limited", 429,
               f"At most {RATE_LIMIT} reveals per hour; try again later.")
    if envelope is None:
        refuse(Outcome.FAILURE, "no_card_data", 404, "FINCI has sent no card data for this card.")
    try:
        number, expiry = jwe.card_number(jwe.decrypt(session, store, envelope.token,
                                                     environment=environment, at=at))
    except jwe.CardDataRefused as refused:
        refuse(Outcome.FAILURE, refused.reason, 409,
               f"The card data cannot be decrypted ({refused.reason.replace('_', ' ')}).")
    record(session, actor=actor, action=AuditAction.CARDS_CARD_DATA_REVEAL, target=target,
           at=at, details={"reason": text, "kid": envelope.kid, "seconds": REVEAL_SECONDS})
    return Revealed(number, expiry, at + dt.timedelta(seconds=REVEAL_SECONDS))
