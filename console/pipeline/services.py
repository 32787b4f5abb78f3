"""Read models behind the console pages (deliveries, duplicates, dead letters, rejections) and
the backlog summary. Queries only; the worker and replay modules change state."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

from sqlalchemy import case, func, literal_column, or_, select
from sqlalchemy.orm import Session

from console.db import utcnow
from console.flows.services import Flow, get_state
from console.ingress.models import (
    Disposition,
    MessageStatus,
    StoredMessage,
    WebhookDelivery,
    WebhookRejection,
)
from console.pipeline.models import MessageEffect, Outcome, ProcessingAttempt, ReplayJob
from console.security.redaction import redact_text

PAGE_SIZE = 50


# --- backlog and the pause switch ---------------------------------------------------------------

@dataclass(frozen=True)
class Backlog:
    paused: bool
    paused_by: str | None
    paused_reason: str | None
    by_status: dict[str, int]
    oldest_pending_at: dt.datetime | None
    retrying: int

    @property
    def waiting(self) -> int:
        return self.by_status.get(MessageStatus.PENDING, 0) + self.by_status.get(
            MessageStatus.PROCESSING, 0)

    def as_dict(self) -> dict:
        return {"processing": "paused" if self.paused else "running",
                "paused_by": self.paused_by, "paused_reason": self.paused_reason,
                "by_status": self.by_status, "waiting": self.waiting, "retrying": self.retrying,
                "oldest_pending_at": (self.oldest_pending_at.isoformat()
                                      if self.oldest_pending_at else None)}


_UNFINISHED = tuple(s for s in MessageStatus.ALL if s != MessageStatus.PROCESSED)


def backlog(session: Session) -> Backlog:
    state = get_state(session, Flow.PROCESSING)
    # Every status but processed, on the (status, next_attempt_at) index; processed is the rest
    # of the messages ever stored (none is deleted), from the metric totals: a count over the
    # whole table took most of a second at 2.5 million messages.
    counts = dict(session.execute(
        select(StoredMessage.status, func.count())
        .where(StoredMessage.status.in_(_UNFINISHED)).group_by(StoredMessage.status)).all())
    stored = duplicate_totals(session)[Disposition.FIRST]
    counts[MessageStatus.PROCESSED] = max(0, stored - sum(counts.values()))
    oldest = session.scalar(select(func.min(StoredMessage.received_at))
                            .where(StoredMessage.status == MessageStatus.PENDING))
    if isinstance(oldest, str):  # SQLite aggregates bypass the column type
        oldest = dt.datetime.fromisoformat(oldest).replace(tzinfo=dt.UTC)
    retrying = session.scalar(select(func.count()).select_from(StoredMessage).where(
        StoredMessage.status == MessageStatus.PENDING, StoredMessage.attempts > 0)) or 0
    return Backlog(
        paused=not state.enabled, paused_by=None if state.enabled else state.changed_by,
        paused_reason=None if state.enabled else state.reason,
        by_status={status: int(counts.get(status, 0)) for status in MessageStatus.ALL},
        oldest_pending_at=oldest, retrying=int(retrying))


# --- charts -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    value: int
    label: str


def bars(values: list[tuple[str, int]], *, width: int = 600, height: int = 60,
         gap: float = 1.0) -> list[Bar]:
    """Geometry for a server-rendered SVG bar chart (no front-end charting code)."""
    if not values:
        return []
    top = max(v for _, v in values) or 1
    step = width / len(values)
    shapes = []
    for index, (label, value) in enumerate(values):
        h = 0.0 if value == 0 else max(1.0, height * value / top)
        shapes.append(Bar(round(index * step, 2), round(height - h, 2),
                          round(max(step - gap, 0.5), 2), round(h, 2), value, label))
    return shapes


def _minute_bucket(session: Session, column):
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.date_trunc("minute", column), literal_column("'HH24:MI'"))
    return func.strftime("%H:%M", column)


def deliveries_per_minute(session: Session, *, minutes: int = 60,
                          now: dt.datetime | None = None) -> list[tuple[str, int]]:
    now = (now or utcnow()).replace(second=0, microsecond=0)
    start = now - dt.timedelta(minutes=minutes - 1)
    bucket = _minute_bucket(session, WebhookDelivery.received_at)
    counts = dict(session.execute(select(bucket, func.count())
                                  .where(WebhookDelivery.received_at >= start)
                                  .group_by(bucket)).all())
    labels = [(start + dt.timedelta(minutes=i)).strftime("%H:%M") for i in range(minutes)]
    return [(label, int(counts.get(label, 0))) for label in labels]


# --- deliveries ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class DeliveryFilter:
    type: str | None = None
    q: str | None = None          # FINCI id, webhook id or token id
    status: str | None = None     # the message's processing status
    disposition: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    before_id: int | None = None

    def as_dict(self) -> dict:
        return {k: (v.isoformat() if isinstance(v, dt.datetime) else v)
                for k, v in self.__dict__.items() if v is not None}


def search_deliveries(session: Session, criteria: DeliveryFilter, limit: int = PAGE_SIZE):
    query = (select(WebhookDelivery, StoredMessage)
             .join(StoredMessage, StoredMessage.id == WebhookDelivery.message_id))
    if criteria.type:
        query = query.where(StoredMessage.type == criteria.type)
    if criteria.q:
        query = query.where(or_(StoredMessage.finci_id == criteria.q,
                                WebhookDelivery.webhook_id == criteria.q,
                                StoredMessage.token_id == criteria.q))
    if criteria.status:
        query = query.where(StoredMessage.status == criteria.status)
    if criteria.disposition:
        query = query.where(WebhookDelivery.disposition == criteria.disposition)
    if criteria.since:
        query = query.where(WebhookDelivery.received_at >= criteria.since)
    if criteria.until:
        query = query.where(WebhookDelivery.received_at < criteria.until)
    if criteria.before_id:
        query = query.where(WebhookDelivery.id < criteria.before_id)
    return session.execute(query.order_by(WebhookDelivery.id.desc()).limit(limit)).all()


def search_rejections(session: Session, criteria: DeliveryFilter, limit: int = PAGE_SIZE):
    query = select(WebhookRejection)
    if criteria.q:
        query = query.where(or_(WebhookRejection.webhook_id == criteria.q,
                                WebhookRejection.source_ip == criteria.q))
    # Counters per minute: one matches if it saw a refusal in the range.
    if criteria.since:
        query = query.where(WebhookRejection.last_seen_at >= criteria.since)
    if criteria.until:
        query = query.where(WebhookRejection.first_seen_at < criteria.until)
    if criteria.before_id:
        query = query.where(WebhookRejection.id < criteria.before_id)
    return list(session.scalars(query.order_by(WebhookRejection.id.desc()).limit(limit)))


def message_types(session: Session) -> list[str]:
    return list(session.scalars(select(StoredMessage.type).distinct().order_by(
        StoredMessage.type)))


# --- one message --------------------------------------------------------------------------------

@dataclass(frozen=True)
class MessageDetail:
    message: StoredMessage
    deliveries: list[WebhookDelivery]
    attempts: list[ProcessingAttempt]
    effect: MessageEffect | None
    pretty_body: str
    delivery_headers: list[dict] = field(default_factory=list)


def pretty(body: str) -> str:
    """Indented JSON for reading; card numbers masked again in case anything slipped through."""
    try:
        text = json.dumps(json.loads(body), indent=2, sort_keys=True, ensure_ascii=False)
    except ValueError:
        text = body
    return redact_text(text)


def message_detail(session: Session, message_id: int) -> MessageDetail | None:
    message = session.get(StoredMessage, message_id)
    if message is None:
        return None
    deliveries = list(session.scalars(select(WebhookDelivery).where(
        WebhookDelivery.message_id == message_id).order_by(WebhookDelivery.id)))
    attempts = list(session.scalars(select(ProcessingAttempt).where(
        ProcessingAttempt.message_id == message_id).order_by(ProcessingAttempt.id)))
    headers = []
    for delivery in deliveries:
        try:
            headers.append(json.loads(delivery.headers))
        except ValueError:
            headers.append({})
    return MessageDetail(message, deliveries, attempts, session.get(MessageEffect, message_id),
                         pretty(message.body), headers)


# --- duplicates ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class DuplicateRow:
    message_id: int
    type: str
    finci_id: str
    deliveries: int
    conflicts: int
    first_at: dt.datetime
    last_at: dt.datetime
    effects: int
    applied_attempts: int

    @property
    def span_seconds(self) -> float:
        return (self.last_at - self.first_at).total_seconds()

    @property
    def violated(self) -> bool:
        """More than one effect for one message: must never happen (the PK forbids it)."""
        return self.effects > 1 or self.applied_attempts > 1


def _aware(value):
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


def duplicates(session: Session, limit: int = PAGE_SIZE) -> list[DuplicateRow]:
    grouped = (select(WebhookDelivery.message_id.label("message_id"),
                      func.count().label("deliveries"),
                      func.sum(case((WebhookDelivery.disposition == Disposition.CONFLICT, 1),
                                    else_=0)).label("conflicts"),
                      func.min(WebhookDelivery.received_at).label("first_at"),
                      func.max(WebhookDelivery.received_at).label("last_at"))
               .group_by(WebhookDelivery.message_id)
               .having(func.count() > 1).subquery())
    effects = (select(func.count()).select_from(MessageEffect)
               .where(MessageEffect.message_id == grouped.c.message_id).scalar_subquery())
    applied = (select(func.count()).select_from(ProcessingAttempt)
               .where(ProcessingAttempt.message_id == grouped.c.message_id,
                      ProcessingAttempt.outcome == Outcome.APPLIED).scalar_subquery())
    rows = session.execute(
        select(grouped, StoredMessage.type, StoredMessage.finci_id, effects.label("effects"),
               applied.label("applied"))
        .join(StoredMessage, StoredMessage.id == grouped.c.message_id)
        .order_by(grouped.c.last_at.desc()).limit(limit)).all()
    return [DuplicateRow(r.message_id, r.type, r.finci_id, int(r.deliveries),
                         int(r.conflicts or 0), _aware(r.first_at), _aware(r.last_at),
                         int(r.effects), int(r.applied)) for r in rows]


def duplicate_totals(session: Session) -> dict[str, int]:
    """Deliveries by disposition, from the metric totals (a count over the delivery table took
    most of a second at three million rows)."""
    from console.monitoring.folds import delivery_outcomes

    return delivery_outcomes(session)


# --- dead letters and parked --------------------------------------------------------------------

def dead_and_parked(session: Session, limit: int = PAGE_SIZE) -> list[StoredMessage]:
    return list(session.scalars(
        select(StoredMessage)
        .where(StoredMessage.status.in_((MessageStatus.DEAD, MessageStatus.PARKED)))
        .order_by(StoredMessage.processed_at.desc(), StoredMessage.id.desc()).limit(limit)))


def failing(session: Session, limit: int = PAGE_SIZE) -> list[StoredMessage]:
    """Pending messages that already failed at least once (waiting for their next attempt)."""
    return list(session.scalars(
        select(StoredMessage)
        .where(StoredMessage.status == MessageStatus.PENDING, StoredMessage.attempts > 0)
        .order_by(StoredMessage.next_attempt_at).limit(limit)))


# --- rejected traffic ---------------------------------------------------------------------------

@dataclass(frozen=True)
class RejectionSummary:
    since: dt.datetime
    total: int
    by_reason: list[tuple[str, int]]
    by_source: list[tuple[str, int]]
    recent: list[WebhookRejection]


def rejection_summary(session: Session, *, hours: int = 24, now: dt.datetime | None = None,
                      top: int = 15) -> RejectionSummary:
    since = (now or utcnow()) - dt.timedelta(hours=hours)
    recent_window = WebhookRejection.seen_since(since)
    # Rows are counters: every total is a sum of ``count``.
    refused = func.sum(WebhookRejection.count)
    by_reason = session.execute(
        select(WebhookRejection.reason, refused).where(recent_window)
        .group_by(WebhookRejection.reason).order_by(refused.desc()).limit(top)).all()
    source = func.coalesce(func.nullif(WebhookRejection.source_ip, ""), "unknown")
    by_source = session.execute(
        select(source, refused).where(recent_window)
        .group_by(source).order_by(refused.desc()).limit(top)).all()
    total = session.scalar(select(refused).where(recent_window)) or 0
    recent = list(session.scalars(select(WebhookRejection).order_by(
        WebhookRejection.minute.desc(), WebhookRejection.last_seen_at.desc()).limit(20)))
    return RejectionSummary(since, int(total), [(r, int(c)) for r, c in by_reason],
                            [(s, int(c)) for s, c in by_source], recent)


# --- replays ------------------------------------------------------------------------------------

def recent_replays(session: Session, limit: int = 20) -> list[ReplayJob]:
    return list(session.scalars(select(ReplayJob).order_by(ReplayJob.id.desc()).limit(limit)))
