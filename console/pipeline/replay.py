"""Replay: re-queue one message or a filtered set, idempotently, at a bounded rate, audited.

A replay never applies anything itself: it puts messages back to ``pending`` (fresh attempts)
and the worker processes them as usual. Messages already applied have an effect-ledger row, so
the worker records a ``noop`` for them and nothing happens twice; that is what makes replay
idempotent and safe to repeat or to run over a broad filter.

A job is a row with progress: the set is fixed at creation (messages up to ``max_message_id``)
and re-queued in id order by whichever worker steps the job, never faster than
``PIPELINE_REPLAY_RATE_PER_S``; cancelling stops the re-queueing (messages already re-queued
still get processed, which is harmless).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from sqlalchemy import and_, case, exists, func, not_, or_, select, update
from sqlalchemy.orm import Session

from console.audit import Actor, AuditAction, Target, record
from console.db import Database, utcnow
from console.ingress.models import MessageStatus, StoredMessage
from console.ingress.settings import IngressSettings
from console.pipeline import handlers
from console.pipeline.models import MessageEffect, ReplayJob, ReplayStatus
from console.pipeline.worker import write_lock

REASON_MAX = 200
REPLAYABLE_STATUSES = (MessageStatus.PROCESSED, MessageStatus.DEAD, MessageStatus.PARKED,
                       MessageStatus.PENDING)


class ReplayRefused(ValueError):
    """The request cannot be honoured; the message says why, for the operator."""


@dataclass(frozen=True)
class Criteria:
    message_id: int | None = None
    type: str | None = None
    status: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None

    def __post_init__(self) -> None:
        if self.status is not None and self.status not in REPLAYABLE_STATUSES:
            raise ReplayRefused(f"status must be one of {', '.join(REPLAYABLE_STATUSES)}")
        if self.since and self.until and self.since >= self.until:
            raise ReplayRefused("the time range is empty (from must be before to)")
        if self.type is not None and not 0 < len(self.type) <= 64:
            raise ReplayRefused("type must be 1 to 64 characters")

    @property
    def is_empty(self) -> bool:
        return all(v is None for v in (self.message_id, self.type, self.status, self.since,
                                       self.until))

    def clauses(self) -> list:
        found = []
        if self.message_id is not None:
            found.append(StoredMessage.id == self.message_id)
        if self.type:
            found.append(StoredMessage.type == self.type)
        if self.status:
            found.append(StoredMessage.status == self.status)
        if self.since:
            found.append(StoredMessage.received_at >= self.since)
        if self.until:
            found.append(StoredMessage.received_at < self.until)
        return found

    def as_dict(self) -> dict:
        return {"message_id": self.message_id, "type": self.type, "status": self.status,
                "since": self.since.isoformat() if self.since else None,
                "until": self.until.isoformat() if self.until else None}

    @classmethod
    def from_dict(cls, data: dict) -> Criteria:
        return cls(message_id=data.get("message_id"), type=data.get("type"),
                   status=data.get("status"),
                   since=dt.datetime.fromisoformat(data["since"]) if data.get("since") else None,
                   until=dt.datetime.fromisoformat(data["until"]) if data.get("until") else None)


@dataclass(frozen=True)
class Preview:
    total: int
    noops: int          # already applied, or no handler yet: replaying changes nothing
    in_progress: int    # claimed by a worker right now: skipped
    by_status: dict[str, int]

    @property
    def would_apply(self) -> int:
        return max(0, self.total - self.noops - self.in_progress)

    def as_dict(self) -> dict:
        return {"total": self.total, "noops": self.noops, "in_progress": self.in_progress,
                "would_apply": self.would_apply, "by_status": self.by_status}


def _noop_condition():
    applied = exists().where(MessageEffect.message_id == StoredMessage.id)
    registered = handlers.registered_types()
    if not registered:
        return or_(applied, StoredMessage.id.is_not(None))
    return or_(applied, not_(StoredMessage.type.in_(sorted(registered))))


def preview(session: Session, criteria: Criteria, *, max_message_id: int | None = None
            ) -> Preview:
    clauses = criteria.clauses()
    if max_message_id is not None:
        clauses.append(StoredMessage.id <= max_message_id)
    processing = StoredMessage.status == MessageStatus.PROCESSING
    row = session.execute(select(
        func.count(),
        func.coalesce(func.sum(case((and_(_noop_condition(), not_(processing)), 1), else_=0)),
                      0),
        func.coalesce(func.sum(case((processing, 1), else_=0)), 0),
    ).select_from(StoredMessage).where(*clauses)).one()
    by_status = dict(session.execute(
        select(StoredMessage.status, func.count()).where(*clauses)
        .group_by(StoredMessage.status)).all())
    return Preview(total=row[0], noops=int(row[1]), in_progress=int(row[2]),
                   by_status={k: int(v) for k, v in by_status.items()})


def active_jobs(session: Session) -> list[ReplayJob]:
    return list(session.scalars(select(ReplayJob).where(ReplayJob.status.in_(ReplayStatus.ACTIVE))
                                .order_by(ReplayJob.id)))


def start(session: Session, actor: Actor, criteria: Criteria, reason: str,
          settings: IngressSettings, *, now: dt.datetime | None = None) -> ReplayJob:
    """Create a replay job (audited). A single message is re-queued at once."""
    reason = (reason or "").strip()
    if not reason:
        raise ReplayRefused("a reason is required")
    if len(reason) > REASON_MAX:
        raise ReplayRefused(f"the reason is longer than {REASON_MAX} characters")
    if criteria.is_empty:
        raise ReplayRefused("choose at least one filter (a message, type, status or time range)")
    write_lock(session)
    if len(active_jobs(session)) >= settings.replay_max_active:
        raise ReplayRefused(f"{settings.replay_max_active} replays are already running; wait "
                            "for one to finish or cancel one")
    max_id = session.scalar(select(func.max(StoredMessage.id))) or 0
    seen = preview(session, criteria, max_message_id=max_id)
    if seen.total == 0:
        raise ReplayRefused("no message matches these filters")
    now = now or utcnow()
    job = ReplayJob(created_at=now, created_by=actor.id[:200], reason=reason,
                    criteria=json.dumps(criteria.as_dict(), sort_keys=True),
                    max_message_id=max_id, cursor=0, total=seen.total,
                    expected_noops=seen.noops, done=0, status=ReplayStatus.PENDING,
                    cancel_requested=False)
    session.add(job)
    session.flush()
    record(session, actor=actor, action=AuditAction.PIPELINE_REPLAY_START,
           target=Target("replay_job", str(job.id)),
           details={"criteria": criteria.as_dict(), "reason": reason, **seen.as_dict()})
    if criteria.message_id is not None:
        step(session, job, limit=2, now=now)  # one message: re-queued and finished at once
    return job


def cancel(session: Session, actor: Actor, job_id: int, *, now: dt.datetime | None = None
           ) -> ReplayJob:
    write_lock(session)
    job = session.scalar(select(ReplayJob).where(ReplayJob.id == job_id).with_for_update())
    if job is None:
        raise ReplayRefused("no such replay")
    if job.status not in ReplayStatus.ACTIVE:
        raise ReplayRefused(f"this replay is already {job.status}")
    before = {"status": job.status}
    job.cancel_requested = True
    job.status = ReplayStatus.CANCELLED
    job.finished_at = now or utcnow()
    session.flush()
    record(session, actor=actor, action=AuditAction.PIPELINE_REPLAY_CANCEL,
           target=Target("replay_job", str(job.id)), before=before,
           after={"status": job.status}, details={"done": job.done, "total": job.total})
    return job


def step(session: Session, job: ReplayJob, *, limit: int, now: dt.datetime | None = None) -> int:
    """Re-queue up to ``limit`` more messages of ``job``; finish it when none are left."""
    now = now or utcnow()
    if job.status not in ReplayStatus.ACTIVE or job.cancel_requested:
        return 0
    if job.status == ReplayStatus.PENDING:
        job.status = ReplayStatus.RUNNING
        job.started_at = now
    criteria = Criteria.from_dict(json.loads(job.criteria))
    ids = list(session.scalars(
        select(StoredMessage.id)
        .where(*criteria.clauses(), StoredMessage.id > job.cursor,
               StoredMessage.id <= job.max_message_id)
        .order_by(StoredMessage.id).limit(limit)))
    if ids:
        session.execute(
            update(StoredMessage)
            .where(StoredMessage.id.in_(ids), StoredMessage.status != MessageStatus.PROCESSING)
            .values(status=MessageStatus.PENDING, attempts=0, next_attempt_at=now,
                    replay_job_id=job.id, last_error=None)
            .execution_options(synchronize_session=False))
        job.cursor = ids[-1]
        job.done = min(job.total, job.done + len(ids))
    if len(ids) < limit:
        job.status = ReplayStatus.DONE
        job.finished_at = now
        record(session, actor=Actor.system("replay"), action=AuditAction.PIPELINE_REPLAY_COMPLETE,
               target=Target("replay_job", str(job.id)),
               details={"requeued": job.done, "total": job.total})
    session.flush()
    return len(ids)


def step_active(database: Database, settings: IngressSettings, *, now: dt.datetime | None = None
                ) -> dict[int, int]:
    """Advance every active job by what its rate allows since it started (one worker at a
    time per job: the row is locked, and others skip it)."""
    now = now or utcnow()
    stepped: dict[int, int] = {}
    with database.transaction() as session:
        write_lock(session)
        jobs = list(session.scalars(
            select(ReplayJob).where(ReplayJob.status.in_(ReplayStatus.ACTIVE),
                                    ReplayJob.cancel_requested.is_(False))
            .order_by(ReplayJob.id).with_for_update(skip_locked=True)))
        for job in jobs:
            started = job.started_at or now
            allowed = int(settings.replay_rate_per_s * (now - started).total_seconds()) + 1
            budget = min(max(0, allowed - job.done), max(1, int(settings.replay_rate_per_s)))
            if budget == 0:
                continue
            stepped[job.id] = step(session, job, limit=budget, now=now)
    return stepped
