"""Walk the chain and name the first row that breaks it (changed, missing, inserted, moved)."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session

from console.audit.chain import GENESIS_HASH, ChainReport, verify_rows
from console.audit.models import AuditEvent, AuditHead

__all__ = ["ChainReport", "iter_rows", "verify_chain", "verify_rows"]


def iter_rows(session: Session, *, first: int = 1, last: int | None = None,
              batch: int = 1000) -> Iterator:
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


def verify_chain(session: Session, batch: int = 1000) -> ChainReport:
    report = verify_rows(iter_rows(session, batch=batch))
    if not report.ok:
        return report
    head = session.get(AuditHead, 1)
    if head is not None and (head.seq, head.row_hash) != (report.head_seq or 0,
                                                          report.head_hash or GENESIS_HASH):
        # Rows were removed from the end: the head still remembers the true last row.
        return ChainReport(False, report.rows, report.head_seq, report.head_hash,
                           (report.head_seq or 0) + 1,
                           f"rows after {report.head_seq or 0} are missing "
                           f"(the chain head records row {head.seq})")
    return report
