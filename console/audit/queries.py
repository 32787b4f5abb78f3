"""Reading the audit log: filtered, newest first, keyset-paginated by sequence number."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from console.audit.models import AuditEvent

PAGE_SIZE = 50


@dataclass(frozen=True)
class AuditFilter:
    actor: str | None = None
    action: str | None = None
    target: str | None = None
    outcome: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    before_seq: int | None = None

    def as_dict(self) -> dict:
        return {k: (v.isoformat() if isinstance(v, dt.datetime) else v)
                for k, v in vars(self).items() if v is not None}


def search(session: Session, criteria: AuditFilter, limit: int = PAGE_SIZE) -> list[AuditEvent]:
    query = select(AuditEvent)
    if criteria.actor:
        query = query.where(AuditEvent.actor_id == criteria.actor)
    if criteria.action:
        query = query.where(AuditEvent.action.startswith(criteria.action, autoescape=True))
    if criteria.target:
        query = query.where(AuditEvent.target_id == criteria.target)
    if criteria.outcome:
        query = query.where(AuditEvent.outcome == criteria.outcome)
    if criteria.since:
        query = query.where(AuditEvent.occurred_at >= criteria.since)
    if criteria.until:
        query = query.where(AuditEvent.occurred_at < criteria.until)
    if criteria.before_seq:
        query = query.where(AuditEvent.seq < criteria.before_seq)
    return list(session.scalars(query.order_by(AuditEvent.seq.desc()).limit(limit)))
