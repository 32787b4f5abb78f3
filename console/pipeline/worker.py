"""The inbox worker: claim a batch under a lease, then apply each message in its own transaction.

Why a separate claim transaction plus one transaction per message (rather than one long
transaction holding ``FOR UPDATE`` over the whole batch):

- Locks are held for one message at a time, so a slow handler delays one message, not a batch,
  and a failing one rolls back only itself (a poison message never blocks the others).
- The claim is visible (``status = processing``, owner, lease expiry): operators see what each
  worker holds, and a worker killed with -9 simply stops renewing; once ``lease_until`` passes,
  any worker re-claims the message (recorded as ``lease_expired``).
- Attempts are counted at claim time, so a message that crashes its worker every time still
  reaches the dead letters after ``max_attempts`` instead of looping forever.

Claim: ``SELECT … FOR UPDATE SKIP LOCKED LIMIT n`` of due rows (pending and due, or processing
with an expired lease), then one UPDATE stamping status, owner, lease token and expiry; COMMIT.
Many workers can claim at once on PostgreSQL; on SQLite the statement takes the write lock and one
worker is enough (and correct: the lease token still fences every apply).

Apply, one transaction per message: first a fencing UPDATE (``WHERE id = :id AND lease_token =
:token AND status = 'processing'``) that proves we still own the claim and takes the row lock
(PostgreSQL) or the write lock (SQLite) before anything is read; then the handler in a SAVEPOINT,
the effect-ledger row (PRIMARY KEY message_id: a second application cannot commit), the attempt
record and the "processed" mark; COMMIT. At-least-once delivery to the handler, exactly-once
effect. A handler failure rolls back its SAVEPOINT and records the failure in the same
transaction: retry with exponential backoff, dead letter after ``max_attempts``.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import secrets
import socket
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass

from sqlalchemy import and_, or_, select, text, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from console.audit import Actor, AuditAction, Target, record
from console.db import Database, utcnow
from console.finci.payload import PayloadRejected, parse_message
from console.flows.services import Flow, is_enabled
from console.ingress.models import MessageStatus, StoredMessage
from console.ingress.settings import IngressSettings
from console.pipeline import handlers
from console.pipeline.models import MessageEffect, Outcome, ProcessingAttempt
from console.security.redaction import redact_text

log = logging.getLogger(__name__)

ERROR_MAX = 2000


def backoff_delay(attempt: int, base_s: float, cap_s: float,
                  rand: Callable[[], float] = random.random) -> float:
    """Exponential backoff with jitter: between half and all of ``base * 2**(attempt-1)``."""
    delay = min(cap_s, base_s * (2 ** max(0, attempt - 1)))
    return delay / 2 + rand() * delay / 2


def write_lock(session: Session) -> None:
    """On SQLite, take the write lock first: a transaction that reads and then writes fails at
    once (SQLITE_BUSY, not retried) if another writer committed in between, and the ingress
    writes all the time. On PostgreSQL row locks do this job and this is a no-op."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text("UPDATE webhook_message SET id = id WHERE 0"))


def describe_error(exc: BaseException) -> str:
    """Exception type and message with card numbers masked, bounded."""
    return redact_text(f"{type(exc).__name__}: {exc}")[:ERROR_MAX]


@dataclass
class BatchReport:
    claimed: int = 0
    applied: int = 0
    no_handler: int = 0
    noop: int = 0
    parked: int = 0
    failed: int = 0
    dead: int = 0
    lost: int = 0       # claims taken over by another worker before we applied them
    expired: int = 0    # claims of vanished workers found and retaken
    released: int = 0
    paused: bool = False

    def add(self, other: BatchReport) -> None:
        for key, value in asdict(other).items():
            if key != "paused":
                setattr(self, key, getattr(self, key) + value)
        self.paused = other.paused

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Claim:
    message_id: int
    token: str
    attempt: int


class Worker:
    def __init__(self, database: Database, settings: IngressSettings, *, name: str | None = None,
                 clock: Callable[[], dt.datetime] = utcnow,
                 rand: Callable[[], float] = random.random) -> None:
        self.database = database
        self.settings = settings
        self.name = (name or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}")[:100]
        self.actor = Actor.system("worker")
        self.clock = clock
        self.rand = rand
        self.stop = threading.Event()

    # --- claim ---------------------------------------------------------------------------

    def claim(self, limit: int | None = None) -> tuple[list[Claim], BatchReport]:
        report = BatchReport()
        now = self.clock()
        token = secrets.token_hex(16)
        with self.database.transaction() as session:
            write_lock(session)
            if not is_enabled(session, Flow.PROCESSING):
                report.paused = True
                return [], report
            due = or_(
                and_(StoredMessage.status == MessageStatus.PENDING,
                     StoredMessage.next_attempt_at <= now),
                and_(StoredMessage.status == MessageStatus.PROCESSING,
                     StoredMessage.lease_until < now),
            )
            rows = session.execute(
                select(StoredMessage.id, StoredMessage.status, StoredMessage.attempts,
                       StoredMessage.lease_owner, StoredMessage.replay_job_id)
                .where(due).order_by(StoredMessage.id).limit(limit or self.settings.batch_size)
                .with_for_update(skip_locked=True)
            ).all()
            claimable = []
            for row in rows:
                if row.status == MessageStatus.PROCESSING:
                    report.expired += 1
                    log.warning("claim on message %s expired (worker %s vanished); retaking",
                                row.id, row.lease_owner)
                    session.add(ProcessingAttempt(
                        message_id=row.id, attempt=row.attempts, worker=row.lease_owner or "?",
                        started_at=now, finished_at=now, outcome=Outcome.LEASE_EXPIRED,
                        error="the worker holding the claim stopped before finishing",
                        replay_job_id=row.replay_job_id))
                if row.attempts >= self.settings.max_attempts:
                    self._dead_letter(session, row.id, row.attempts, now,
                                      "gave up: the worker was lost during every attempt",
                                      row.replay_job_id)
                    report.dead += 1
                else:
                    claimable.append(row)
            if claimable:
                session.execute(
                    update(StoredMessage)
                    .where(StoredMessage.id.in_([row.id for row in claimable]))
                    .values(status=MessageStatus.PROCESSING, attempts=StoredMessage.attempts + 1,
                            lease_token=token, lease_owner=self.name,
                            lease_until=now + dt.timedelta(seconds=self.settings.lease_s))
                    .execution_options(synchronize_session=False))
        claims = [Claim(row.id, token, row.attempts + 1) for row in claimable]
        report.claimed = len(claims)
        return claims, report

    def release(self, claims: list[Claim]) -> int:
        """Hand unprocessed claims back (pause, shutdown) without counting an attempt."""
        if not claims:
            return 0
        with self.database.transaction() as session:
            write_lock(session)
            released = 0
            for claim in claims:
                released += session.execute(
                    update(StoredMessage)
                    .where(StoredMessage.id == claim.message_id,
                           StoredMessage.lease_token == claim.token,
                           StoredMessage.status == MessageStatus.PROCESSING)
                    .values(status=MessageStatus.PENDING, attempts=StoredMessage.attempts - 1,
                            lease_token=None, lease_owner=None, lease_until=None)
                    .execution_options(synchronize_session=False)).rowcount
        return released

    # --- apply -----------------------------------------------------------------------------

    def apply(self, claim: Claim) -> str | None:
        """Process one claimed message; returns its outcome, or None if the claim was lost."""
        with self.database.transaction() as session:
            write_lock(session)
            owned = session.execute(
                update(StoredMessage)
                .where(StoredMessage.id == claim.message_id,
                       StoredMessage.lease_token == claim.token,
                       StoredMessage.status == MessageStatus.PROCESSING)
                .values(lease_until=StoredMessage.lease_until)
                .execution_options(synchronize_session=False)).rowcount
            if owned != 1:
                log.warning("claim on message %s was lost before it could be applied",
                            claim.message_id)
                return None
            stored = session.get(StoredMessage, claim.message_id, populate_existing=True)
            assert stored is not None  # noqa: S101 - the fencing UPDATE just matched it
            return self._apply(session, stored, claim)

    def _apply(self, session: Session, stored: StoredMessage, claim: Claim) -> str:
        started = self.clock()
        if session.get(MessageEffect, stored.id) is not None:
            # Already applied (a replay, or a retried claim after a commit): nothing again.
            return self._finish(session, stored, started, Outcome.NOOP,
                                MessageStatus.PROCESSED, message_outcome=Outcome.APPLIED)
        try:
            message = parse_message(stored.body.encode("utf-8"))
        except PayloadRejected as exc:
            return self._fail(session, stored, started,
                              handlers.DeadLetter(f"stored body does not parse: {exc.reason}"))
        registration = handlers.handler_for(message.type)
        if registration is None:
            if not message.known_type:
                return self._finish(session, stored, started, Outcome.PARKED,
                                    MessageStatus.PARKED)
            return self._finish(session, stored, started, Outcome.NO_HANDLER,
                                MessageStatus.PROCESSED)
        context = handlers.Context(session=session, message=message, stored=stored,
                                   actor=self.actor, attempt=claim.attempt)
        try:
            with session.begin_nested():
                result = registration.handler(context)
                summary = (result.summary if isinstance(result, handlers.Result) else None)
                session.add(MessageEffect(
                    message_id=stored.id, handler=registration.name, applied_at=self.clock(),
                    attempt=claim.attempt,
                    summary=redact_text(summary)[:200] if summary else None))
                session.flush()
        except Exception as exc:
            return self._fail(session, stored, started, exc)
        return self._finish(session, stored, started, Outcome.APPLIED, MessageStatus.PROCESSED)

    def _finish(self, session: Session, stored: StoredMessage, started: dt.datetime,
                outcome: str, status: str, *, message_outcome: str | None = None) -> str:
        now = self.clock()
        stored.status = status
        stored.outcome = message_outcome or outcome
        stored.processed_at = now
        stored.last_error = None
        stored.lease_token = stored.lease_owner = stored.lease_until = None
        session.add(ProcessingAttempt(
            message_id=stored.id, attempt=stored.attempts, worker=self.name, started_at=started,
            finished_at=now, outcome=outcome, replay_job_id=stored.replay_job_id))
        return outcome

    def _fail(self, session: Session, stored: StoredMessage, started: dt.datetime,
              exc: Exception) -> str:
        now = self.clock()
        error = describe_error(exc)
        final = (isinstance(exc, handlers.DeadLetter)
                 or stored.attempts >= self.settings.max_attempts)
        log.warning("message %s attempt %s failed: %s", stored.id, stored.attempts,
                    type(exc).__name__)
        session.add(ProcessingAttempt(
            message_id=stored.id, attempt=stored.attempts, worker=self.name, started_at=started,
            finished_at=now, outcome=Outcome.DEAD if final else Outcome.FAILED, error=error,
            replay_job_id=stored.replay_job_id))
        if final:
            self._dead_letter(session, stored.id, stored.attempts, now, error,
                              stored.replay_job_id, record_attempt=False)
            return Outcome.DEAD
        delay = backoff_delay(stored.attempts, self.settings.backoff_base_s,
                              self.settings.backoff_max_s, self.rand)
        stored.status = MessageStatus.PENDING
        stored.next_attempt_at = now + dt.timedelta(seconds=delay)
        stored.last_error = error
        stored.lease_token = stored.lease_owner = stored.lease_until = None
        return Outcome.FAILED

    def _dead_letter(self, session: Session, message_id: int, attempts: int, now: dt.datetime,
                     error: str, replay_job_id: int | None, *, record_attempt: bool = True
                     ) -> None:
        session.execute(
            update(StoredMessage).where(StoredMessage.id == message_id)
            .values(status=MessageStatus.DEAD, outcome=Outcome.DEAD, last_error=error,
                    processed_at=now, lease_token=None, lease_owner=None, lease_until=None)
            .execution_options(synchronize_session=False))
        if record_attempt:
            session.add(ProcessingAttempt(
                message_id=message_id, attempt=attempts, worker=self.name, started_at=now,
                finished_at=now, outcome=Outcome.DEAD, error=error, replay_job_id=replay_job_id))
        log.error("message %s moved to dead letters after %s attempts", message_id, attempts)
        record(session, actor=self.actor, action=AuditAction.PIPELINE_MESSAGE_DEAD_LETTER,
               target=Target("message", str(message_id)),
               details={"attempts": attempts, "error": error[:300]})

    # --- loop ------------------------------------------------------------------------------

    def processing_enabled(self) -> bool:
        with self.database.transaction() as session:
            return is_enabled(session, Flow.PROCESSING)

    def run_once(self, limit: int | None = None) -> BatchReport:
        """Claim one batch and apply it (pausing or stopping hands the rest back)."""
        claims, report = self.claim(limit)
        for index, claim in enumerate(claims):
            if self.stop.is_set() or not self.processing_enabled():
                report.released += self.release(claims[index:])
                report.paused = not self.stop.is_set()
                break
            outcome = self.apply(claim)
            if outcome is None:
                report.lost += 1
            else:
                field = {Outcome.APPLIED: "applied", Outcome.NO_HANDLER: "no_handler",
                         Outcome.NOOP: "noop", Outcome.PARKED: "parked",
                         Outcome.FAILED: "failed", Outcome.DEAD: "dead"}[outcome]
                setattr(report, field, getattr(report, field) + 1)
        return report

    def run(self, *, until_idle: bool = False, step_replays: Callable[[], object] | None = None,
            max_batches: int | None = None) -> BatchReport:
        """Loop until ``stop`` is set (or, with ``until_idle``, until nothing is due)."""
        total = BatchReport()
        batches = 0
        failures = 0
        while not self.stop.is_set():
            try:
                if step_replays is not None:
                    step_replays()
                report = self.run_once()
                failures = 0
            except SQLAlchemyError as exc:
                # The database is down or restarting: claims stay leased and expire; back off.
                failures += 1
                wait = min(10.0, self.settings.poll_interval_s * 2 ** min(failures, 6))
                log.error("worker cannot reach the database (%s); retrying in %.1fs",
                          type(exc).__name__, wait)
                self.stop.wait(wait)
                continue
            total.add(report)
            batches += 1
            if max_batches is not None and batches >= max_batches:
                break
            if report.claimed == 0 and report.dead == 0:
                if until_idle:
                    break
                self.stop.wait(self.settings.poll_interval_s)
        return total
