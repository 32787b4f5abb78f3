"""Cards. FINCI identifies a card by ``token_id``; we never hold more than a masked number.

Created by seeding and fixtures today; the card lifecycle (issue #6) refreshes them from FINCI's
get-cards API and from ``card_status`` webhooks. Decisioning reads one row per authorization
(by ``token_id``, unique), so everything it needs is on this row or one join away.
"""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, validates

from console.db import Base, utcnow
from console.finci import contract

ID = BigInteger().with_variant(Integer, "sqlite")

_MASKED = re.compile(contract.MASKED_CARD_NUMBER_PATTERN)


def _in(column: str, values) -> str:
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"


class Card(Base):
    __tablename__ = "card"
    __table_args__ = (
        CheckConstraint(_in("status", contract.TokenStatus), name="status_known"),
        CheckConstraint(f"stage IS NULL OR {_in('stage', contract.TokenStage)}",
                        name="stage_known"),
        CheckConstraint("length(currency) = 3", name="currency_iso"),
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    token_id: Mapped[str] = mapped_column(String(contract.TOKEN_ID_MAX_LENGTH), unique=True)
    # ``XXXX-XX**-****-XXXX`` as FINCI returns it: first six and last four digits at most.
    masked_number: Mapped[str | None] = mapped_column(String(19))
    status: Mapped[str] = mapped_column(String(16))
    stage: Mapped[str | None] = mapped_column(String(24))
    person_id: Mapped[str | None] = mapped_column(String(64), index=True)
    corporate_id: Mapped[str | None] = mapped_column(String(64), index=True)
    employee_id: Mapped[str | None] = mapped_column(String(64))
    product_id: Mapped[str | None] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(3))
    # The customer-funds account the card spends from; several cards may share one (corporate).
    # NULL: known to FINCI but not linked to funds yet, so it cannot be approved.
    account_id: Mapped[int | None] = mapped_column(ID, ForeignKey("ledger_account.id"),
                                                   index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @validates("masked_number")
    def _only_masked(self, _key, value: str | None) -> str | None:
        # The one place a card number could enter this table: anything but the masked form is
        # refused, so a full number can never be stored by mistake.
        if value is not None and not _MASKED.fullmatch(value):
            raise ValueError("masked_number must look like XXXX-XX**-****-XXXX")
        return value

    @validates("status")
    def _known_status(self, _key, value: str) -> str:
        return contract.TokenStatus(value).value

    @validates("currency")
    def _currency(self, _key, value: str) -> str:
        if not re.fullmatch(r"[A-Z]{3}", value or ""):
            raise ValueError("currency must be an ISO 4217 code")
        return value
