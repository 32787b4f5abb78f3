"""Run health checks, store each result, move each check's alert state; snooze; read status.

One service for the scheduler, the CLI and the health page. The caller owns the transaction:
notifications are queued on the session and sent by ``console.checks.notifiers`` only after it
commits (a rolled-back run notifies nobody).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.orm import Session

from console.audit.actions import AuditAction
from console.audit.services import Actor, Target, record
from console.checks import alerts, notifiers
from console.checks.models import CheckResult, CheckState, ResultStatus
from console.checks.probes import Context
from console.checks.registry import BY_ID, CHECKS, Check
from console.settings import Settings

log = logging.getLogger(__name__)
PENDING = "health_check_notifications"
MAX_REASON = 500
MAX_SNOOZE = dt.timedelta(days=7)
HISTORY = 30


class CheckRefused(ValueError):
    """A snooze or run request that cannot be done; the message says why, for the operator."""


@dataclass(frozen=True)
class Ran:
    check: Check
    status: str
    detail: str
    duration_ms: int


@dataclass
class RunReport:
    ran: list[Ran] = field(default_factory=list)
    notifications: list[alerts.Notification] = field(default_factory=list)

    def summary(self) -> str:
        if not self.ran:
            return "no check due"
        failing = [r.check.id for r in self.ran if r.status == ResultStatus.FAILING]
        text = f"{len(self.ran)} checks, {len(failing)} failing"
        text += f" ({', '.join(failing)})" if failing else ""
        return text + (f"; {len(self.notifications)} notification(s)"
                       if self.notifications else "")


def state_of(session: Session, check_id: str, *, lock: bool = False) -> CheckState:
    query = select(CheckState).where(CheckState.check_id == check_id)
    state = session.scalar(query.with_for_update() if lock else query)
    if state is None:
        state = CheckState(check_id=check_id, status=ResultStatus.SKIPPED,
                           consecutive_failures=0, alerting=False)
        session.add(state)
    return state


def _probe(check: Check, ctx: Context) -> tuple[str, str]:
    # A savepoint per probe: a failed query must not abort the run's transaction (PostgreSQL).
    try:
        with ctx.session.begin_nested():
            finding = check.probe(ctx)
    except Exception as exc:  # a probe that raises is a failing check, not a failed run
        log.warning("health check %s raised %s", check.id, type(exc).__name__)
        # The type only: exception text can carry SQL parameters or URLs.
        return ResultStatus.FAILING, f"the check raised {type(exc).__name__}"
    return (ResultStatus.OK if finding.ok else ResultStatus.FAILING), finding.detail[:500]


def due(session: Session, now: dt.datetime, checks: Sequence[Check] = CHECKS) -> list[Check]:
    last = dict(session.execute(select(CheckState.check_id, CheckState.last_run_at)).all())
    return [c for c in checks if last.get(c.id) is None or now - last[c.id] >= c.every]


def run_checks(session: Session, settings: Settings, now: dt.datetime,
               checks: Iterable[Check] = CHECKS, *,
               card_api: Callable | None = None) -> RunReport:
    """Run ``checks`` (dependencies first), store results, queue notifications."""
    ctx = Context(session, settings, now, card_api)
    failed: set[str] = set()
    report = RunReport()
    for check in sorted(checks, key=lambda c: len(c.needs)):
        started = time.monotonic()
        blocked = [need for need in check.needs if need in failed]
        if blocked:
            status, detail = ResultStatus.SKIPPED, f"skipped: {', '.join(blocked)} is failing"
        else:
            status, detail = _probe(check, ctx)
        if status == ResultStatus.FAILING:
            failed.add(check.id)
        duration = max(0, round((time.monotonic() - started) * 1000))
        session.add(CheckResult(check_id=check.id, started_at=now, duration_ms=duration,
                                status=status, detail=detail))
        note = alerts.advance(state_of(session, check.id, lock=True), status, title=check.title,
                              detail=detail, now=now, policy=settings.checks)
        report.ran.append(Ran(check, status, detail, duration))
        if note is not None:
            report.notifications.append(note)
    session.flush()
    if report.notifications:
        session.info.setdefault(PENDING, []).append(
            (report.notifications, settings.checks, settings.environment.value))
    return report


def _send_after_commit(session: Session) -> None:
    for notes, policy, environment in session.info.pop(PENDING, []):
        notifiers.deliver(notes, policy, environment)


def _drop_after_rollback(session: Session) -> None:
    session.info.pop(PENDING, None)


sa_event.listen(Session, "after_commit", _send_after_commit)
sa_event.listen(Session, "after_rollback", _drop_after_rollback)


def check_by_id(check_id: str) -> Check:
    check = BY_ID.get(check_id)
    if check is None:
        raise CheckRefused(f"unknown check {check_id!r} (see `flask --app wsgi checks list`)")
    return check


def run_now(session: Session, actor: Actor, settings: Settings, check_ids: Sequence[str],
            now: dt.datetime, *, card_api: Callable | None = None) -> RunReport:
    """An operator's "run now" (page or CLI; all checks when ``check_ids`` is empty): audited,
    then the same run the scheduler does."""
    checks = [check_by_id(i) for i in check_ids] if check_ids else list(CHECKS)
    report = run_checks(session, settings, now, checks, card_api=card_api)
    record(session, actor=actor, action=AuditAction.HEALTH_CHECK_RUN,
           target=Target("health_check", ",".join(check_ids) if check_ids else "all"),
           details={"failing": [r.check.id for r in report.ran
                                if r.status == ResultStatus.FAILING]})
    return report


def snooze(session: Session, actor: Actor, check_id: str, *, reason: str,
           until: dt.datetime, now: dt.datetime) -> CheckState:
    """Hold back this check's failing notifications until ``until`` (mandatory, at most
    ``MAX_SNOOZE`` ahead), with a reason; audited."""
    check = check_by_id(check_id)
    reason = (reason or "").strip()
    if not reason:
        raise CheckRefused("a snooze needs a reason")
    if not reason.isprintable():
        raise CheckRefused("the reason must be one line of printable text")
    if len(reason) > MAX_REASON:
        raise CheckRefused(f"the reason is too long (at most {MAX_REASON} characters)")
    if until <= now:
        raise CheckRefused("the snooze must end in the future")
    if until - now > MAX_SNOOZE:
        raise CheckRefused("a snooze may last at most 7 days")
    state = state_of(session, check.id, lock=True)
    before = {"snoozed_until": state.snoozed_until.isoformat() if alerts.snoozed(state, now)
              else None}
    state.snoozed_until, state.snooze_reason, state.snoozed_by = until, reason, actor.id
    record(session, actor=actor, action=AuditAction.HEALTH_CHECK_SNOOZE,
           target=Target("health_check", check.id), details={"reason": reason},
           before=before, after={"snoozed_until": until.isoformat()})
    session.flush()
    return state


# --- reading -------------------------------------------------------------------------------

@dataclass(frozen=True)
class CheckView:
    check: Check
    state: CheckState | None
    history: list[CheckResult]
    next_run_at: dt.datetime | None

    @property
    def status(self) -> str | None:
        return self.state.status if self.state and self.state.last_run_at else None

    @property
    def latest(self) -> CheckResult | None:
        return self.history[-1] if self.history else None


def latest_statuses(session: Session) -> dict[str, str]:
    """Each registered check's latest status (ok / failing / skipped); never-run checks are
    absent. What the Prometheus collector and the CLI read."""
    rows = session.execute(select(CheckState.check_id, CheckState.status)
                           .where(CheckState.last_run_at.is_not(None))).all()
    return {check_id: status for check_id, status in rows if check_id in BY_ID}


def overview(session: Session, now: dt.datetime, limit: int = HISTORY) -> list[CheckView]:
    states = {s.check_id: s for s in session.scalars(select(CheckState))}
    views = []
    for check in CHECKS:
        history = list(session.scalars(
            select(CheckResult).where(CheckResult.check_id == check.id)
            .order_by(CheckResult.started_at.desc(), CheckResult.id.desc()).limit(limit)))
        history.reverse()
        state = states.get(check.id)
        last = state.last_run_at if state else None
        views.append(CheckView(check, state, history,
                               None if last is None else max(now, last + check.every)))
    return views
