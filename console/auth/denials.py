"""Anonymous denials: counted per minute when they happen, audited in batches.

QUALITY.md wants every denial in the audit log, and the audit log is append-only: one row per
anonymous API call or write would let anyone grow it without bound. So a denial without a session
adds one to its (minute, source, permission, status) counter (``AnonymousDenial``, one upsert,
the same mechanism as refused webhook deliveries), and the ``auth.anonymous_denials`` job writes
one audit row for everything counted since its previous run: how many, from which sources, for
what, over which time span. Each count reaches the audit log exactly once (``audited_count``),
even when requests keep adding to a minute the job has already audited.

Denials of signed-in users are still one audit row each (``services.record_denial``): they are
bounded by who can sign in and name a person.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from console.audit import Actor, AuditAction, Outcome, Target, record
from console.auth.models import AnonymousDenial
from console.counters import counter_upserts, minute_of
from console.security.redaction import redact_text

_TABLE = AnonymousDenial.__table__
_UPSERT = counter_upserts(
    _TABLE, keys=("minute", "source_ip", "permission", "status"),
    columns=("minute", "source_ip", "permission", "status", "count", "audited_count", "pending",
             "first_seen_at", "last_seen_at", "method", "path"),
    samples=("method", "path"), latest=("pending",))

# One audit row names at most this many sources and (permission, status) pairs by count; the
# totals always cover all of them.
TOP = 20
# Counters fully audited and older than this are deleted by the job (their audit rows stay).
KEEP = dt.timedelta(days=30)
# Rows audited per run at most, so one run never holds a long transaction; the rest next run.
BATCH = 5_000


def count(session: Session, *, source_ip: str | None, permission: str, status: int,
          method: str, path: str, at: dt.datetime) -> None:
    """Add one anonymous denial to its counter (in the caller's transaction)."""
    session.execute(_UPSERT[session.get_bind().dialect.name], dict(
        minute=minute_of(at), source_ip=(source_ip or "")[:45], permission=permission[:40],
        status=status, count=1, audited_count=0, pending=True, first_seen_at=at,
        last_seen_at=at, method=method[:10], path=redact_text(path)[:300]))


@dataclass(frozen=True)
class Audited:
    denials: int
    sources: int
    more_left: bool

    @property
    def summary(self) -> str:
        if not self.denials:
            return "no anonymous denials to audit"
        more = "; more left for the next run" if self.more_left else ""
        return f"audited {self.denials} anonymous denials from {self.sources} sources{more}"


def _top(totals: dict, key: str) -> list[dict]:
    ranked = sorted(totals.items(), key=lambda item: (-item[1], item[0]))[:TOP]
    return [{key: name, "count": n} for name, n in ranked]


def audit_counts(session: Session, actor: Actor, now: dt.datetime, *,
                 batch: int = BATCH) -> Audited:
    """One audit row for every count added since the previous run (a scheduler job)."""
    rows = session.scalars(select(AnonymousDenial).where(AnonymousDenial.pending.is_(True))
                           .order_by(AnonymousDenial.id).limit(batch + 1)
                           .with_for_update()).all()
    more_left = len(rows) > batch
    rows = rows[:batch]
    by_source: dict[str, int] = {}
    by_reason: dict[str, int] = {}
    total = 0
    for row in rows:
        new = row.count - row.audited_count
        total += new
        source = row.source_ip or "unknown"
        by_source[source] = by_source.get(source, 0) + new
        reason = f"{row.status} {row.permission}"
        by_reason[reason] = by_reason.get(reason, 0) + new
        row.audited_count = row.count
        row.pending = False
    _purge(session, now)
    if not total:
        return Audited(0, 0, False)
    record(session, actor=actor, action=AuditAction.AUTH_ANONYMOUS_DENIALS_RECORD,
           outcome=Outcome.DENIED, target=Target("anonymous_denials", str(total)),
           details={"denials": total, "sources": len(by_source),
                    "first_seen_at": min(r.first_seen_at for r in rows).isoformat(),
                    "last_seen_at": max(r.last_seen_at for r in rows).isoformat(),
                    "top_sources": _top(by_source, "source_ip"),
                    "by_reason": _top(by_reason, "reason")}, at=now)
    return Audited(total, len(by_source), more_left)


def _purge(session: Session, now: dt.datetime) -> None:
    cutoff = minute_of(now - KEEP)
    session.execute(delete(AnonymousDenial).where(AnonymousDenial.minute < cutoff,
                                                  AnonymousDenial.pending.is_(False)))


def audit_job(session: Session, actor: Actor, now: dt.datetime) -> str:
    return audit_counts(session, actor, now).summary
