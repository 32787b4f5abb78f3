"""The local view of FINCI's cards: refreshed from get-cards, updated from card_status messages.

Status reports can arrive late and out of order. Each one is recorded (``CardStatusChange``);
it changes the card only if it is newer than what the card already shows (``status_as_of``), so
the card ends in FINCI's latest reported status whatever the arrival order. A report that the
working transition model would not allow is still applied (it is a fact at FINCI) and flagged
``modelled = false`` for review.

get-cards returns no status and no currency: a card first seen there starts as ``new`` (it cannot
be approved until FINCI reports it active, or an earlier report for it is found) with its
product's configured currency, and no ledger account until one is linked.

The refresh makes HTTP calls, so it never holds a database transaction open across them: it
reads the owners in one short transaction, calls FINCI with none open, and writes the results
in another.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from console.audit import Actor, AuditAction, Outcome, Target, record
from console.cards.models import Card, CardStatusChange, StatusSource
from console.db import utcnow
from console.finci import card_api
from console.finci.card_status import is_modelled_transition
from console.finci.contract import TokenStage, TokenStatus
from console.transactions.settings import LifecycleSettings

log = logging.getLogger(__name__)

SessionScope = Callable[[], AbstractContextManager[Session]]


def lock_card(session: Session, token_id: str) -> Card | None:
    return session.scalar(select(Card).where(Card.token_id == token_id).with_for_update()
                          .execution_options(populate_existing=True))


def apply_status_report(session: Session, *, token_id: str, status: TokenStatus | str | None,
                        stage: TokenStage | str | None, occurred_at: dt.datetime,
                        source: StatusSource, message_id: int | None = None,
                        action_id: int | None = None,
                        now: dt.datetime | None = None) -> CardStatusChange:
    """Record one status (and/or stage) FINCI reported or accepted; apply it if newest."""
    now = now or utcnow()
    if message_id is not None:
        existing = session.scalar(select(CardStatusChange)
                                  .where(CardStatusChange.message_id == message_id))
        if existing is not None:
            return existing  # a replay of the same message: recorded once
    card = lock_card(session, token_id)
    status = TokenStatus(status).value if status is not None else None
    stage = TokenStage(stage).value if stage is not None else None
    newest = card is not None and (card.status_as_of is None or occurred_at > card.status_as_of)
    change = CardStatusChange(
        card_id=card.id if card else None, token_id=token_id,
        from_status=card.status if card else None, to_status=status, stage=stage,
        source=source.value, message_id=message_id, action_id=action_id,
        occurred_at=occurred_at, recorded_at=now, applied=newest,
        modelled=(card is None or status is None or status == card.status
                  or is_modelled_transition(card.status, status)))
    session.add(change)
    if newest:
        assert card is not None  # noqa: S101 - newest implies a card
        if status is not None:
            card.status = status
        if stage is not None:
            card.stage = stage
        card.status_as_of = occurred_at
    if not change.modelled:
        log.warning("FINCI reported a card status change outside the working model: %s -> %s",
                    change.from_status, status, extra={"card_id": change.card_id})
    session.flush()
    return change


def status_history(session: Session, token_id: str, limit: int = 100) -> list[CardStatusChange]:
    return list(session.scalars(select(CardStatusChange)
                                .where(CardStatusChange.token_id == token_id)
                                .order_by(CardStatusChange.occurred_at.desc(),
                                          CardStatusChange.id.desc()).limit(limit)))


# --- get-cards refresh -----------------------------------------------------------------------

@dataclass
class RefreshReport:
    owners: int = 0
    seen: int = 0
    created: int = 0
    updated: int = 0
    failed_owners: list[str] = field(default_factory=list)
    # Cards for which FINCI sent more than the masked number (masked here; a security alert).
    exposed: int = 0
    # Encrypted card data (B.5) kept, and refused (not our algorithms or no kid).
    card_data: int = 0
    card_data_refused: int = 0

    def as_dict(self) -> dict:
        return {"owners": self.owners, "seen": self.seen, "created": self.created,
                "updated": self.updated, "failed_owners": self.failed_owners,
                "exposed": self.exposed, "card_data": self.card_data,
                "card_data_refused": self.card_data_refused}

    @property
    def summary(self) -> str:
        text = (f"{self.owners} owners, {self.seen} cards ({self.created} new, "
                f"{self.updated} updated)")
        if self.failed_owners:
            text += f"; {len(self.failed_owners)} owners failed"
        if self.exposed:
            text += f"; {self.exposed} unmasked numbers received and masked"
        return text


def owners_to_refresh(session: Session, settings: LifecycleSettings) -> list[tuple[str, str]]:
    owners = set(settings.refresh_owners)
    owners |= {("person", p) for p in session.scalars(
        select(Card.person_id).where(Card.person_id.is_not(None)).distinct())}
    owners |= {("corporate", c) for c in session.scalars(
        select(Card.corporate_id).where(Card.corporate_id.is_not(None)).distinct())}
    return sorted(owners)


def refresh_cards(scope: SessionScope, client: card_api.CardApiClient,
                  settings: LifecycleSettings, actor: Actor,
                  now: dt.datetime | None = None) -> RefreshReport:
    now = now or utcnow()
    report = RefreshReport()
    with scope() as session:
        owners = owners_to_refresh(session, settings)
    report.owners = len(owners)
    listed: list[tuple[str, str, card_api.CardList]] = []
    for kind, owner in owners:  # no transaction open during the calls
        try:
            listed.append((kind, owner, client.get_cards(**{f"{kind}_id": owner})))
        except card_api.CardApiError as exc:
            report.failed_owners.append(f"{kind}:{owner}")
            log.warning("get-cards failed for a %s: %s", kind, exc)
    with scope() as session:
        for kind, owner, cards in listed:
            for item in cards.items:
                report.seen += 1
                report.exposed += item.card_number_exposed
                created = _upsert(session, kind, owner, item, settings, now, report)
                report.created += created
                report.updated += not created
        record(session, actor=actor, action=AuditAction.CARDS_BOOK_REFRESH,
               target=Target("cards", "get-cards"),
               outcome=Outcome.FAILURE if report.failed_owners else Outcome.SUCCESS,
               details=report.as_dict(), at=now)
    if report.exposed:
        log.error("get-cards returned %s card numbers beyond the masked form (masked, not kept)",
                  report.exposed)
    return report


def _keep_card_data(session: Session, card: Card, token: str, now: dt.datetime,
                    report: RefreshReport) -> None:
    """The JWE as FINCI sent it (header checked, nothing decrypted here)."""
    from console.keys import jwe, reveal

    try:
        reveal.store_envelope(session, card, token, at=now)
    except jwe.CardDataRefused as refused:
        report.card_data_refused += 1
        log.warning("get-cards sent card data we cannot accept (%s)", refused.reason)
    else:
        report.card_data += 1


def _upsert(session: Session, kind: str, owner: str, item: card_api.Card,
            settings: LifecycleSettings, now: dt.datetime, report: RefreshReport) -> bool:
    card = lock_card(session, item.token_id)
    created = card is None
    if card is None:
        # The newest status FINCI reported before we knew the card, if any.
        reported = session.scalar(select(CardStatusChange)
                                  .where(CardStatusChange.token_id == item.token_id,
                                         CardStatusChange.to_status.is_not(None))
                                  .order_by(CardStatusChange.occurred_at.desc()).limit(1))
        card = Card(token_id=item.token_id, currency=settings.currency_for(item.product_id),
                    status=reported.to_status if reported else TokenStatus.NEW.value,
                    status_as_of=reported.occurred_at if reported else None)
        session.add(card)
    card.masked_number = item.card_number
    card.product_id = item.product_id
    if kind == "person":
        card.person_id = card.person_id or owner
    else:
        card.corporate_id = card.corporate_id or owner
    card.refreshed_at = now
    session.flush()
    if item.encrypted_card_data is not None:
        _keep_card_data(session, card, item.encrypted_card_data, now, report)
    if created:
        session.add(CardStatusChange(
            card_id=card.id, token_id=card.token_id, from_status=None, to_status=card.status,
            stage=None, source=StatusSource.REFRESH.value, occurred_at=now, recorded_at=now,
            applied=True, modelled=True))
        session.execute(
            CardStatusChange.__table__.update()
            .where(CardStatusChange.token_id == item.token_id, CardStatusChange.card_id.is_(None))
            .values(card_id=card.id))
    return created
