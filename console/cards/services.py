"""Card records: create, look up, and (for seeding, demos and benchmarks) issue a funded card.

The lifecycle issue (#6) adds refresh from FINCI's get-cards API and status webhooks here.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from console.audit import Actor, AuditAction, Target, record
from console.cards.models import Card
from console.finci.contract import TokenStatus
from console.ledger import services as ledger
from console.ledger.models import AccountKind, LedgerAccount


def create_card(session: Session, *, token_id: str, currency: str,
                status: TokenStatus | str = TokenStatus.ACTIVE, account_id: int | None = None,
                masked_number: str | None = None, stage: str | None = None,
                person_id: str | None = None, corporate_id: str | None = None,
                employee_id: str | None = None, product_id: str | None = None) -> Card:
    card = Card(token_id=token_id, currency=currency, status=TokenStatus(status).value,
                account_id=account_id, masked_number=masked_number, stage=stage,
                person_id=person_id, corporate_id=corporate_id, employee_id=employee_id,
                product_id=product_id)
    session.add(card)
    session.flush()
    return card


def card_by_token(session: Session, token_id: str) -> Card | None:
    return session.scalar(select(Card).where(Card.token_id == token_id))


def issue_funded_card(session: Session, *, token_id: str, currency: str = "EUR",
                      balance: int = 0, status: TokenStatus | str = TokenStatus.ACTIVE,
                      account_id: int | None = None, posted_by: str = "seed") -> Card:
    """A card with its own customer account (or ``account_id``'s), loaded with ``balance``."""
    if account_id is None:
        account_id = ledger.open_account(session, kind=AccountKind.CUSTOMER,
                                         name=f"Funds of {token_id}", currency=currency).id
    if balance:
        ledger.fund(session, account_id, balance, reference=f"load:{token_id}:initial",
                    posted_by=posted_by)
    return create_card(session, token_id=token_id, currency=currency, status=status,
                       account_id=account_id)


def link_account(session: Session, actor: Actor, token_id: str, account_id: int) -> Card:
    """Link a card to the ledger account it spends from (audited): the repair for postings
    that failed with ``unknown_account``, and how a card first seen in get-cards gets funds."""
    card = session.scalar(select(Card).where(Card.token_id == token_id).with_for_update())
    if card is None:
        raise LookupError(f"no card with token {token_id}")
    account = session.get(LedgerAccount, account_id)
    if account is None:
        raise LookupError(f"no ledger account {account_id}")
    before = {"account_id": card.account_id}
    card.account_id = account.id
    session.flush()
    record(session, actor=actor, action=AuditAction.CARDS_ACCOUNT_LINK,
           target=Target("card", token_id), before=before,
           after={"account_id": account.id, "currency": account.currency})
    return card
