"""What the overview shows, as one read-only view-model.

FINCI's operating requirements ask monitoring to cover webhook delivery latency, authorization
timeouts, approval and decline outcomes, duplicate deliveries, clearing and posting failures and
card status update failures. Each number comes from the owning feature's read service or table;
this module only gathers them and decides what deserves attention.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from console.audit.models import AuditEvent
from console.cards.models import ActionStatus, CardAction
from console.db import utcnow
from console.decisioning.models import DIVERGENT_OUTCOMES, DecisionRecord
from console.decisioning.queries import Summary
from console.deployment import Deployment
from console.flows.services import FlowState, all_states
from console.ingress.models import StoredMessage, WebhookRejection
from console.monitoring import targets
from console.monitoring.windows import PanelWindow, traffic
from console.pipeline.services import Backlog, backlog, duplicate_totals
from console.scheduler.models import JobStatus
from console.scheduler.registry import JOBS
from console.transactions.models import PostingStatus, TransactionPosting

LATENCY_SAMPLE = 2000
# A job that has not finished for this many of its intervals is reported as stale.
STALE_AFTER_INTERVALS = 3


@dataclass(frozen=True)
class Latency:
    samples: int
    p50_ms: float | None
    p99_ms: float | None


@dataclass(frozen=True)
class Note:
    """One thing to look at, and the page (or overview section) where it is handled."""

    text: str
    endpoint: str
    anchor: str = ""


@dataclass(frozen=True)
class JobHealth:
    name: str
    description: str
    last_outcome: str | None
    last_finished_at: dt.datetime | None
    stale: bool
    failures: int


@dataclass(frozen=True)
class Overview:
    at: dt.datetime
    environment: str
    flows: list[FlowState]
    backlog: Backlog
    duplicates: dict[str, int]
    rejections_24h: int
    delivery_latency: Latency
    decisions: Summary
    posting_failures: int
    postings_parked: int
    card_actions_failed: int
    card_actions_open: int
    jobs: list[JobHealth]
    audit_events: int
    last_audit_at: dt.datetime | None
    initialised_at: dt.datetime | None
    attention: list[Note] = field(default_factory=list)

    @property
    def delivery_latency_breached(self) -> bool:
        return targets.breached(self.delivery_latency.p99_ms, targets.DELIVERY_LATENCY_P99_MS)

    @property
    def authorization_latency_breached(self) -> bool:
        return targets.breached(self.decisions.p99_ms, targets.AUTHORIZATION_P99_MS)


def _percentile(ordered: list[float], pct: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def delivery_latency(session: Session, since: dt.datetime) -> Latency:
    """Received minus FINCI's created_at over the newest messages since ``since``."""
    rows = session.execute(
        select(StoredMessage.received_at, StoredMessage.finci_created_at)
        .where(StoredMessage.received_at >= since)
        .order_by(StoredMessage.received_at.desc()).limit(LATENCY_SAMPLE)).all()
    values = sorted(max(0.0, (received - created).total_seconds() * 1000)
                    for received, created in rows)
    return Latency(len(values), _percentile(values, 50), _percentile(values, 99))


def decisions_summary(session: Session, since: dt.datetime, now: dt.datetime) -> Summary:
    """The last 24 hours of answers from the rollups (console.monitoring.windows), and the
    divergent advices (rare, counted on the advice-outcome index): never a scan of the day's
    decision rows, however busy the program."""
    day = traffic(session, PanelWindow.DAY, now)
    divergent = dict(session.execute(
        select(DecisionRecord.advice_outcome, func.count())
        .where(DecisionRecord.advice_outcome.in_(DIVERGENT_OUTCOMES),
               DecisionRecord.received_at >= since)
        .group_by(DecisionRecord.advice_outcome)).all())

    def ms(estimate):
        return None if estimate.value is None else estimate.value * 1000

    return Summary(since=since, requests=day.decisions, approved=day.approved,
                   declined=day.declined, defaults=day.safe_defaults,
                   by_reason={row.reason: row.count for row in day.reasons},
                   by_outcome={str(k): int(v) for k, v in divergent.items()},
                   p50_ms=ms(day.decision_p50), p99_ms=ms(day.decision_p99))


def _count(session: Session, model, *conditions) -> int:
    return int(session.scalar(select(func.count()).select_from(model).where(*conditions)) or 0)


def job_health(session: Session, now: dt.datetime) -> list[JobHealth]:
    status = {s.name: s for s in session.scalars(select(JobStatus))}
    health = []
    for job in JOBS:
        row = status.get(job.name)
        finished = row.last_finished_at if row else None
        stale = finished is None or now - finished > job.every * STALE_AFTER_INTERVALS
        health.append(JobHealth(job.name, job.description, row.last_outcome if row else None,
                                finished, stale, row.failures if row else 0))
    return health


def overview(session: Session, environment: str, now: dt.datetime | None = None) -> Overview:
    now = now or utcnow()
    day_ago = now - dt.timedelta(hours=24)
    flows = all_states(session)
    queue = backlog(session)
    decisions = decisions_summary(session, day_ago, now)
    audit_count, last_audit = session.execute(
        select(func.count(AuditEvent.seq), func.max(AuditEvent.occurred_at))).one()
    deployment = session.get(Deployment, 1)

    result = Overview(
        at=now,
        environment=environment,
        flows=flows,
        backlog=queue,
        duplicates=duplicate_totals(session),
        rejections_24h=int(session.scalar(
            select(func.sum(WebhookRejection.count)).where(WebhookRejection.seen_since(day_ago)))
            or 0),
        delivery_latency=delivery_latency(session, now - dt.timedelta(hours=1)),
        decisions=decisions,
        posting_failures=_count(session, TransactionPosting,
                                TransactionPosting.status == PostingStatus.FAILED),
        postings_parked=_count(session, TransactionPosting,
                               TransactionPosting.status == PostingStatus.PARKED),
        card_actions_failed=_count(session, CardAction,
                                   CardAction.status == ActionStatus.FAILED),
        card_actions_open=_count(session, CardAction, CardAction.status.in_(ActionStatus.OPEN)),
        jobs=job_health(session, now),
        audit_events=int(audit_count or 0),
        last_audit_at=last_audit,
        initialised_at=deployment.initialised_at if deployment else None,
    )
    result.attention.extend(_attention(result))
    return result


def _attention(view: Overview) -> list[Note]:
    """What an operator should look at first, each linked to where it is handled."""
    notes = [Note(f"{state.flow.value.replace('_', ' ')} is OFF: {state.reason}", "flows.index")
             for state in view.flows if not state.enabled]
    dead = view.backlog.by_status.get("dead", 0)
    if dead:
        notes.append(Note(f"{dead} message(s) in dead letters", "pipeline.dead_letters"))
    if view.decisions.defaults:
        notes.append(Note(f"{view.decisions.defaults} authorization(s) answered with the safe "
                          "default in the last 24 h", "decisioning.decisions"))
    if view.authorization_latency_breached:
        notes.append(Note(f"authorization answers p99 {view.decisions.p99_ms:.0f} ms is above "
                          f"the {targets.AUTHORIZATION_P99_MS:.0f} ms target",
                          "decisioning.decisions"))
    if view.delivery_latency_breached:
        notes.append(Note(f"webhook delivery latency p99 {view.delivery_latency.p99_ms / 1000:.1f}"
                          f" s is above the {targets.DELIVERY_LATENCY_P99_MS / 1000:.0f} s target",
                          "pipeline.deliveries"))
    if view.decisions.divergent:
        notes.append(Note(f"{view.decisions.divergent} advice(s) diverged from our answer",
                          "decisioning.divergences"))
    if view.posting_failures:
        notes.append(Note(f"{view.posting_failures} posting failure(s) waiting for repair",
                          "transactions.failures"))
    if view.card_actions_failed:
        notes.append(Note(f"{view.card_actions_failed} card status update(s) failed",
                          "cards.failed_actions"))
    notes.extend(Note(f"scheduled job {job.name} is stale", "home.overview", "scheduled-jobs")
                 for job in view.jobs if job.stale)
    return notes
