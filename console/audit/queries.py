"""Reading the audit log: filtered, newest first, keyset-paginated by sequence number.

Free text (``AuditFilter.text``) is a case-insensitive substring of one searchable string per
row: actor, action, target and the stored details (reasons, changes, filters). On PostgreSQL a
trigram GIN index over the very same expression (migration 0017_audit_search) serves
``LIKE '%...%'``; SQLite scans, which suits the embedded default's size.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, literal_column, select
from sqlalchemy.orm import Session

from console.audit.models import AuditEvent

PAGE_SIZE = 50
# The longest free-text query: longer ones are refused, not cut (a cut query finds other rows).
TEXT_LIMIT = 200


def search_text():
    """lower(actor_id || ' ' || action || ' ' || target_type || ' ' || target_id || ' ' ||
    details): the indexed expression. Keep it identical to SEARCH_INDEX_SQL in the migration,
    or PostgreSQL will not use the index."""
    # Constants inlined, not bound: a bound ' ' makes a different expression from the index's.
    space, empty = literal_column("' '"), literal_column("''")
    return func.lower(
        AuditEvent.actor_id + space + AuditEvent.action + space
        + func.coalesce(AuditEvent.target_type, empty) + space
        + func.coalesce(AuditEvent.target_id, empty) + space + AuditEvent.details)


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be searched for, or None. Any printable text is fine: LIKE
    wildcards and quotes are matched literally (escaped), never interpreted."""
    if len(value) > TEXT_LIMIT:
        return f"the search text is longer than {TEXT_LIMIT} characters"
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return "the search text holds control characters (such as NUL); remove them"
    return None


@dataclass(frozen=True)
class AuditFilter:
    actor: str | None = None
    action: str | None = None
    target: str | None = None
    target_type: str | None = None
    outcome: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    before_seq: int | None = None
    # Free text, matched case-insensitively anywhere in actor, action, target and details.
    text: str | None = None

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
    if criteria.target_type:
        query = query.where(AuditEvent.target_type == criteria.target_type)
    if criteria.outcome:
        query = query.where(AuditEvent.outcome == criteria.outcome)
    if criteria.since:
        query = query.where(AuditEvent.occurred_at >= criteria.since)
    if criteria.until:
        query = query.where(AuditEvent.occurred_at < criteria.until)
    if criteria.before_seq:
        query = query.where(AuditEvent.seq < criteria.before_seq)
    if criteria.text:
        query = query.where(search_text().contains(criteria.text.lower(), autoescape=True))
    return list(session.scalars(query.order_by(AuditEvent.seq.desc()).limit(limit)))
