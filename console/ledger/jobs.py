"""Scheduled ledger work (registered in console.scheduler.registry)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from console.audit import Actor, AuditAction, Target, record
from console.ledger.services import release_expired_holds


def expire_holds(session: Session, actor: Actor, now: dt.datetime) -> str:
    """Release holds past their expiry: the backstop against holds no advice ever settles."""
    released = release_expired_holds(session, now)
    if not released:
        return "nothing due"
    record(session, actor=actor, action=AuditAction.LEDGER_HOLDS_EXPIRE,
           target=Target("ledger_holds", str(len(released))),
           details={"holds": [hold.hold_id for hold in released[:100]],
                    "amount_by_currency": _totals(released)}, at=now)
    return f"released {len(released)} expired holds"


def _totals(released) -> dict[str, int]:
    totals: dict[str, int] = {}
    for hold in released:
        totals[hold.currency] = totals.get(hold.currency, 0) + hold.amount
    return totals
