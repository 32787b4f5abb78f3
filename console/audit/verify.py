"""Walk the chain and name the first row that breaks it (changed, missing, inserted, moved)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from console.audit.chain import fields_of, row_hash
from console.audit.models import GENESIS_HASH, AuditEvent, AuditHead


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    rows: int
    head_seq: int | None
    head_hash: str | None
    broken_seq: int | None = None
    problem: str | None = None

    def as_dict(self) -> dict:
        return {
            "ok": self.ok, "rows": self.rows, "head_seq": self.head_seq,
            "head_hash": self.head_hash, "broken_seq": self.broken_seq, "problem": self.problem,
        }


def verify_rows(rows: Iterable) -> ChainReport:
    """Verify any ordered iterable of rows with the audit columns (database rows or an export)."""
    expected_seq, prev, count, last = 1, GENESIS_HASH, 0, None
    for event in rows:
        count += 1
        if event.seq != expected_seq:
            if event.seq > expected_seq:
                problem = f"row {expected_seq} is missing (next row found is {event.seq})"
                return ChainReport(False, count, last, prev, expected_seq, problem)
            problem = f"row {event.seq} appears out of order after row {expected_seq - 1}"
            return ChainReport(False, count, last, prev, event.seq, problem)
        if event.prev_hash != prev:
            problem = (f"row {event.seq} does not link to row {event.seq - 1} "
                       "(a row was inserted, removed or moved here)")
            return ChainReport(False, count, last, prev, event.seq, problem)
        if row_hash(prev, fields_of(event)) != event.row_hash:
            problem = f"row {event.seq} was changed after it was written (hash mismatch)"
            return ChainReport(False, count, last, prev, event.seq, problem)
        prev, last, expected_seq = event.row_hash, event.seq, expected_seq + 1
    return ChainReport(True, count, last, prev if last else None)


def verify_chain(session: Session, batch: int = 1000) -> ChainReport:
    def stream():
        after = 0
        while True:
            # Plain rows, not ORM objects: a long log must not grow the identity map.
            chunk = session.execute(
                select(AuditEvent.__table__).where(AuditEvent.seq > after)
                .order_by(AuditEvent.seq).limit(batch)
            ).all()
            if not chunk:
                return
            yield from chunk
            after = chunk[-1].seq

    report = verify_rows(stream())
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
