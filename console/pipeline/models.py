"""Processing records: attempts, the effect ledger and replay jobs.

The pause switch is the ``processing`` flow of ``console.flows`` (one audited switch mechanism
for every flow).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from console.db import Base
from console.ingress.models import ID, _in


class Outcome:
    APPLIED = "applied"          # a handler ran and its effect was recorded
    NO_HANDLER = "no_handler"    # known type, nothing registered yet: a recorded no-op
    NOOP = "noop"                # already applied (e.g. a replay): nothing done again
    PARKED = "parked"            # unknown type: kept for review
    FAILED = "failed"            # the handler raised; will retry
    DEAD = "dead"                # failed for the last time
    LEASE_EXPIRED = "lease_expired"  # the worker vanished (kill -9) while holding the claim
    RELEASED = "released"        # claim handed back unprocessed (pause, shutdown)
    ALL = (APPLIED, NO_HANDLER, NOOP, PARKED, FAILED, DEAD, LEASE_EXPIRED, RELEASED)


class ProcessingAttempt(Base):
    __tablename__ = "processing_attempt"
    __table_args__ = (CheckConstraint(_in("outcome", Outcome.ALL), name="outcome_known"),)

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    message_id: Mapped[int] = mapped_column(ID, ForeignKey("webhook_message.id"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    worker: Mapped[str] = mapped_column(String(100))
    started_at: Mapped[dt.datetime] = mapped_column(index=True)
    finished_at: Mapped[dt.datetime]
    outcome: Mapped[str] = mapped_column(String(20))
    # Exception type and message, card numbers masked, truncated.
    error: Mapped[str | None] = mapped_column(Text)
    replay_job_id: Mapped[int | None] = mapped_column(ID)


class MessageEffect(Base):
    """The effect ledger: at most one row per message (the primary key), written in the same
    transaction as the handler's effects and the "processed" mark. A second application, by a
    racing worker or a replay, cannot commit."""

    __tablename__ = "message_effect"

    message_id: Mapped[int] = mapped_column(ID, ForeignKey("webhook_message.id"),
                                            primary_key=True, autoincrement=False)
    handler: Mapped[str] = mapped_column(String(100))
    applied_at: Mapped[dt.datetime]
    attempt: Mapped[int] = mapped_column(Integer)
    # What the handler reported, short and free of card data.
    summary: Mapped[str | None] = mapped_column(String(200))


class ReplayStatus:
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    CANCELLED = "cancelled"
    ALL = (PENDING, RUNNING, DONE, CANCELLED)
    ACTIVE = (PENDING, RUNNING)


class ReplayJob(Base):
    """A replay of one message or a filtered set, re-queued at a bounded rate by the worker."""

    __tablename__ = "replay_job"
    __table_args__ = (
        CheckConstraint(_in("status", ReplayStatus.ALL), name="status_known"),
        CheckConstraint("done <= total", name="progress_bounded"),
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    created_at: Mapped[dt.datetime] = mapped_column(index=True)
    created_by: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(String(200))
    # The filter as canonical JSON (type, status, since, until, message_id).
    criteria: Mapped[str] = mapped_column(Text)
    # Snapshot bound: messages stored after the job was created are not part of it.
    max_message_id: Mapped[int] = mapped_column(ID)
    # Last message id re-queued; the job resumes after it.
    cursor: Mapped[int] = mapped_column(ID, default=0)
    total: Mapped[int] = mapped_column(Integer)
    # Counted at preview time: already applied or still without a handler.
    expected_noops: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(12), default=ReplayStatus.PENDING, index=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]

