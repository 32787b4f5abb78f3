"""What each health check measures. A probe reads the owning feature's service or table and
answers ``Finding(ok, detail)``; it never writes, and its detail carries figures and thresholds
only (no secrets, no card data, floats rounded)."""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from console.settings import Settings

WINDOW = dt.timedelta(minutes=15)  # the recent past that rate checks look at
SKEW_SAMPLE = 50


@dataclass(frozen=True)
class Finding:
    ok: bool
    detail: str


@dataclass
class Context:
    session: Session
    settings: Settings
    now: dt.datetime
    # (LifecycleSettings) -> CardApiClient; tests and the demo pass their own.
    card_api: Callable | None = field(default=None)


def _count(session: Session, model, *conditions) -> int:
    return int(session.scalar(select(func.count()).select_from(model).where(*conditions)) or 0)


def database(ctx: Context) -> Finding:
    from console import migrate

    ctx.session.execute(text("SELECT 1"))
    current = migrate.current_revision(ctx.session.connection())
    head = migrate.head_revision()
    if current != head:
        return Finding(False, "the database answers but migrations are pending")
    return Finding(True, "the database answers and is at the current revision")


def card_api(ctx: Context) -> Finding:
    from console.cards.actions import card_api_client
    from console.cards.refresh import owners_to_refresh
    from console.finci.card_api import CardApiError, ErrorKind

    lifecycle = ctx.settings.lifecycle
    if not lifecycle.card_api_configured:
        return Finding(True, "the Card API is not configured (nothing to reach)")
    owners = owners_to_refresh(ctx.session, lifecycle)
    kind, owner = owners[0] if owners else ("person", "0")
    make = ctx.card_api or (lambda s: card_api_client(s, max_attempts=1, timeout=(2.0, 5.0)))
    try:
        with make(lifecycle) as client:
            client.get_cards(**{f"{kind}_id": owner})
    except CardApiError as exc:
        if exc.status in (401, 403):
            return Finding(False, f"reachable but the credentials were refused (HTTP "
                           f"{exc.status})")
        if exc.kind is ErrorKind.REJECTED:
            # FINCI read our signed request and answered in its envelope (an unknown probe
            # owner, say): reachable, and the credentials were accepted.
            return Finding(True, "reachable; credentials accepted (FINCI answered the probe)")
        return Finding(False, f"unreachable or failing: {exc.kind.value} error"
                       + (f" (HTTP {exc.status})" if exc.status else ""))
    return Finding(True, "reachable; credentials accepted")


def webhook_silence(ctx: Context) -> Finding:
    from console.ingress.models import StoredMessage

    minutes = ctx.settings.checks.silence.minutes_at(ctx.now.hour)
    since = ctx.now - dt.timedelta(minutes=minutes)
    recent = _count(ctx.session, StoredMessage, StoredMessage.received_at >= since,
                    StoredMessage.received_at <= ctx.now)
    if recent == 0:
        return Finding(False, f"no webhook deliveries in the last {minutes} min")
    return Finding(True, f"{recent} deliveries in the last {minutes} min")


def backlog_age(ctx: Context) -> Finding:
    from console.pipeline.services import backlog

    queue = backlog(ctx.session)
    limit = ctx.settings.checks.backlog_age_s
    if queue.oldest_pending_at is None:
        return Finding(True, "no message is waiting")
    age = int((ctx.now - queue.oldest_pending_at).total_seconds())
    paused = " (processing is switched off)" if queue.paused else ""
    return Finding(age <= limit, f"{queue.waiting} waiting, oldest {age} s (limit {limit} s)"
                   + paused)


def dead_letters(ctx: Context) -> Finding:
    from console.ingress.models import MessageStatus, StoredMessage

    dead = _count(ctx.session, StoredMessage, StoredMessage.status == MessageStatus.DEAD)
    limit = ctx.settings.checks.dead_letters_max
    return Finding(dead <= limit, f"{dead} dead letter(s) (limit {limit})")


def timeout_rate(ctx: Context) -> Finding:
    from console.decisioning.queries import summary

    recent = summary(ctx.session, ctx.now - WINDOW)
    limit = ctx.settings.checks.timeout_rate_percent
    if not recent.requests:
        return Finding(True, "no authorization requests in the last 15 min")
    late = recent.defaults + recent.timeouts
    rate = 100 * late / recent.requests
    return Finding(rate <= limit, f"{late} of {recent.requests} answers late or defaulted "
                   f"({rate:.1f} %, limit {limit:.1f} %) in the last 15 min")


def decision_latency(ctx: Context) -> Finding:
    from console.decisioning.queries import summary

    recent = summary(ctx.session, ctx.now - WINDOW)
    limit = ctx.settings.checks.decision_p99_ms
    if recent.p99_ms is None:
        return Finding(True, "no timed decisions in the last 15 min")
    return Finding(recent.p99_ms <= limit, f"p99 {recent.p99_ms:.0f} ms (limit {limit:.0f} ms) "
                   "in the last 15 min")


def duplicate_spike(ctx: Context) -> Finding:
    from console.ingress.models import Disposition, WebhookDelivery

    duplicates = _count(ctx.session, WebhookDelivery,
                        WebhookDelivery.received_at >= ctx.now - WINDOW,
                        WebhookDelivery.disposition.in_((Disposition.DUPLICATE,
                                                         Disposition.CONFLICT)))
    limit = ctx.settings.checks.duplicate_spike
    return Finding(duplicates <= limit, f"{duplicates} duplicate deliveries in the last 15 min "
                   f"(limit {limit})")


def posting_failures(ctx: Context) -> Finding:
    from console.transactions.models import PostingStatus, TransactionPosting

    failed = _count(ctx.session, TransactionPosting,
                    TransactionPosting.status == PostingStatus.FAILED)
    limit = ctx.settings.checks.posting_failures_max
    return Finding(failed <= limit, f"{failed} posting failure(s) waiting for repair "
                   f"(limit {limit})")


def card_update_failures(ctx: Context) -> Finding:
    from console.cards.models import ActionStatus, CardAction

    failed = _count(ctx.session, CardAction, CardAction.status == ActionStatus.FAILED)
    limit = ctx.settings.checks.card_update_failures_max
    return Finding(failed <= limit, f"{failed} card status update(s) failed (limit {limit})")


def credential_expiry(ctx: Context) -> Finding:
    from console.keys.services import Status, TlsFiles, key_status

    report = key_status(ctx.session, ctx.settings, at=ctx.now, tls=TlsFiles.from_env())
    days = ctx.settings.checks.credential_expiry_days
    horizon = ctx.now + dt.timedelta(days=days)
    problems = [item.key for item in report.items if item.status is Status.PROBLEM]
    expiring = [item.key for item in report.items for _name, _label, value in item.facts
                if isinstance(value, dt.datetime) and _name in ("not_after", "expires_at")
                and value <= horizon]
    if problems or expiring:
        parts = ([f"problem: {', '.join(problems)}"] if problems else []) + (
            [f"expiring within {days} days: {', '.join(expiring)}"] if expiring else [])
        return Finding(False, "; ".join(parts) + " (see Keys and credentials)")
    return Finding(True, f"no credential problem; nothing expires within {days} days")


def audit_chain(ctx: Context) -> Finding:
    from console.audit.verify import verify_chain

    report = verify_chain(ctx.session)
    if not report.ok:
        return Finding(False, f"the audit chain breaks at row {report.broken_seq}: "
                       f"{report.problem}")
    return Finding(True, f"{report.rows} audit rows verified")


def clock_skew(ctx: Context) -> Finding:
    """Our receive time against FINCI's signed ``webhook-timestamp`` over recent messages: the
    median hides a single slow delivery, and a drift here soon refuses every webhook (±300 s)."""
    from console.ingress.models import StoredMessage

    rows = ctx.session.execute(
        select(StoredMessage.received_at, StoredMessage.webhook_timestamp)
        .where(StoredMessage.received_at >= ctx.now - dt.timedelta(hours=1))
        .order_by(StoredMessage.received_at.desc()).limit(SKEW_SAMPLE)).all()
    limit = ctx.settings.checks.clock_skew_s
    if not rows:
        return Finding(True, "no deliveries in the last hour to compare clocks with")
    skew = statistics.median(received.timestamp() - stamp for received, stamp in rows)
    return Finding(abs(skew) <= limit, f"median skew {skew:+.0f} s over {len(rows)} "
                   f"deliveries (limit ±{limit} s)")
