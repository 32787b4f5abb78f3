"""Walk the chain and name the first row that breaks it (changed, missing, inserted, moved).

Rows that retention archived (console.audit.retention) are no longer in the table: the walk
starts after the newest archive, from its last hash, and the archives themselves are checked
against their signed bundles by the retention module."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from console.audit.chain import GENESIS_HASH, ChainReport, verify_rows
from console.audit.models import AuditArchive, AuditEvent, AuditHead

__all__ = ["ChainReport", "archived_through", "iter_rows", "verify_chain", "verify_rows"]


def archived_through(session: Session) -> tuple[int, str]:
    """(the newest archive's last seq, its last hash), or (0, the genesis hash)."""
    newest = session.execute(select(AuditArchive.last_seq, AuditArchive.last_hash)
                             .where(AuditArchive.last_seq == select(func.max(
                                 AuditArchive.last_seq)).scalar_subquery())).first()
    return (newest.last_seq, newest.last_hash) if newest else (0, GENESIS_HASH)


def iter_rows(session: Session, *, first: int = 1, last: int | None = None,
              batch: int = 5000) -> Iterator:
    """Rows ``first``..``last`` (or to the end) in sequence order, fetched in batches."""
    after = first - 1
    while True:
        # Plain rows, not ORM objects: a long log must not grow the identity map.
        query = select(AuditEvent.__table__).where(AuditEvent.seq > after)
        if last is not None:
            query = query.where(AuditEvent.seq <= last)
        chunk = session.execute(query.order_by(AuditEvent.seq).limit(batch)).all()
        if not chunk:
            return
        yield from chunk
        after = chunk[-1].seq


def verify_chain(session: Session, batch: int = 5000) -> ChainReport:
    archived, anchor = archived_through(session)
    report = verify_rows(iter_rows(session, first=archived + 1, batch=batch),
                         first_seq=archived + 1, anchor=anchor)
    if not report.ok:
        return report
    head = session.get(AuditHead, 1)
    last_seq, last_hash = report.head_seq or archived, report.head_hash or anchor
    if head is not None and (head.seq, head.row_hash) != (last_seq, last_hash):
        # Rows were removed from the end: the head still remembers the true last row.
        return ChainReport(False, report.rows, report.head_seq, report.head_hash,
                           last_seq + 1,
                           f"rows after {last_seq} are missing "
                           f"(the chain head records row {head.seq})")
    return report
