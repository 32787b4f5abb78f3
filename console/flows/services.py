"""Reading and flipping flow switches. Every change is audited with before/after and a reason.

Reads go through ``console.flows.cache`` (at most a second old, one query for every flow);
``set_flow`` writes the row under a lock. Four-eyes requests are in ``console.flows.approvals``.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from console.audit import Actor, AuditAction, Target, record
from console.db import utcnow
from console.flows import cache
from console.flows.models import FlowSwitch

log = logging.getLogger(__name__)

MAX_REASON = 500
MAX_REVERT = dt.timedelta(days=7)
# How long before an auto-revert the banner, the page and the scheduler warn about it.
REVERT_WARNING = dt.timedelta(minutes=5)


class Flow(StrEnum):
    # Answering FINCI's real-time authorization requests with our rules. Off: every request gets
    # the configured stand-in answer (decline by default), recorded with the reason.
    DECISIONING = "decisioning"
    # The worker applying stored messages. Off: ingress keeps storing; the backlog grows.
    PROCESSING = "processing"
    # Posting presentments and refunds to our ledger. Off: they are stored and parked, and
    # posted once the flow is back on.
    LEDGER_POSTING = "ledger_posting"
    # Outbound card status changes through FINCI's Card API. Off: requests are queued, not sent.
    CARD_ACTIONS = "card_actions"
    # Showing decrypted card data to a permitted person. Off: refused for everyone.
    REVEAL = "reveal"


DESCRIPTIONS = {
    Flow.DECISIONING: "Answer authorization requests with our rules",
    Flow.PROCESSING: "Apply stored webhook messages (ledger, timelines, card state)",
    Flow.LEDGER_POSTING: "Post presentments and refunds to the ledger",
    Flow.CARD_ACTIONS: "Send card status changes to FINCI",
    Flow.REVEAL: "Show decrypted card data to permitted people",
}

# What happens to traffic while the flow is off: shown next to its switch, so nobody has to
# guess in an incident.
OFF_BEHAVIOUR = {
    Flow.DECISIONING: "Every authorization gets the configured stand-in answer at once, without "
                      "evaluating rules; each is recorded with the reason.",
    Flow.PROCESSING: "Webhooks are still verified and stored; the worker stops applying them, so "
                     "the backlog grows and is applied once, in order, when turned back on.",
    Flow.LEDGER_POSTING: "Presentments and refunds are stored and parked; nothing is posted. "
                         "Parked postings are posted when the flow is turned back on.",
    Flow.CARD_ACTIONS: "Card status changes are queued, not sent to FINCI; the queue is sent "
                       "when the flow is turned back on.",
    Flow.REVEAL: "Every request to reveal card data is refused, for everyone.",
}


class FlowChangeRefused(ValueError):
    pass


class FlowSwitchedOff(RuntimeError):
    """What is asked for belongs to a flow that is switched off: refused, for everyone."""

    def __init__(self, flow: Flow):
        self.flow = flow
        super().__init__(f"{DESCRIPTIONS[flow]}: switched off (kill switch); refused for "
                         "everyone until the flow is turned back on")


@dataclass(frozen=True)
class FlowState:
    flow: Flow
    enabled: bool
    changed_at: dt.datetime | None
    changed_by: str | None
    reason: str | None
    revert_at: dt.datetime | None
    approved_by: str | None = None
    revert_warned_at: dt.datetime | None = None

    @property
    def description(self) -> str:
        return DESCRIPTIONS[self.flow]

    @property
    def off_behaviour(self) -> str:
        return OFF_BEHAVIOUR[self.flow]

    @property
    def label(self) -> str:
        return self.flow.value.replace("_", " ").capitalize()

    def revert_soon(self, now: dt.datetime) -> bool:
        """The auto-revert is within ``REVERT_WARNING`` (or overdue: the job runs shortly)."""
        return self.revert_at is not None and self.revert_at - now <= REVERT_WARNING


_COLUMNS = (FlowSwitch.flow, FlowSwitch.enabled, FlowSwitch.changed_at, FlowSwitch.changed_by,
            FlowSwitch.reason, FlowSwitch.revert_at, FlowSwitch.approved_by,
            FlowSwitch.revert_warned_at)


def _load(session: Session) -> dict[Flow, FlowState]:
    """Every switch in one query (plain rows, not ORM objects: nothing lands in the session)."""
    rows = {row.flow: row for row in session.execute(select(*_COLUMNS))}
    states = {}
    for flow in Flow:
        row = rows.get(flow.value)
        states[flow] = (FlowState(flow, True, None, None, None, None) if row is None else
                        FlowState(flow, row.enabled, row.changed_at, row.changed_by, row.reason,
                                  row.revert_at, row.approved_by, row.revert_warned_at))
    return states


def _state(flow: Flow, row: FlowSwitch | None) -> FlowState:
    if row is None:
        return FlowState(flow, True, None, None, None, None)
    return FlowState(flow, row.enabled, row.changed_at, row.changed_by, row.reason, row.revert_at,
                     row.approved_by, row.revert_warned_at)


def _states(session: Session) -> dict[Flow, FlowState]:
    return cache.CACHE.get(session, _load)


def is_enabled(session: Session, flow: Flow) -> bool:
    """From the fast path: at most a second old, and this process's own changes at once."""
    return _states(session)[flow].enabled


def require_enabled(session: Session, flow: Flow) -> None:
    """Raise ``FlowSwitchedOff`` unless ``flow`` is on. No role, admin or break-glass session
    gets past it: the switch is about the flow, not the person (the reveal of card data checks
    it before anything else)."""
    if not is_enabled(session, flow):
        raise FlowSwitchedOff(flow)


def get_state(session: Session, flow: Flow) -> FlowState:
    return _states(session)[flow]


def all_states(session: Session) -> list[FlowState]:
    states = _states(session)
    return [states[flow] for flow in Flow]


def off_states(session: Session) -> list[FlowState]:
    return [state for state in all_states(session) if not state.enabled]


def validate_change(reason: str | None, revert_after: dt.timedelta | None) -> str:
    """The reason, stripped; FlowChangeRefused when it or the auto-revert is not acceptable."""
    reason = (reason or "").strip()
    if not reason:
        raise FlowChangeRefused("a reason is required")
    if len(reason) > MAX_REASON:
        raise FlowChangeRefused(f"the reason is longer than {MAX_REASON} characters")
    if revert_after is not None and not dt.timedelta(minutes=1) <= revert_after <= MAX_REVERT:
        raise FlowChangeRefused("auto-revert must be between 1 minute and 7 days")
    return reason


def set_flow(session: Session, actor: Actor, flow: Flow, *, enabled: bool, reason: str,
             revert_after: dt.timedelta | None = None, now: dt.datetime | None = None,
             requested_by: str | None = None) -> FlowState:
    """Apply a change at once. ``requested_by``: the change was a four-eyes request by that
    person and ``actor`` approved it (console.flows.approvals)."""
    reason = validate_change(reason, revert_after)
    now = now or utcnow()
    # Lock the row so two on-call engineers flipping at once produce two ordered audit rows.
    row = session.scalar(select(FlowSwitch).where(FlowSwitch.flow == flow.value)
                         .with_for_update().execution_options(populate_existing=True))
    before = _state(flow, row)
    if row is None:
        row = FlowSwitch(flow=flow.value)
        session.add(row)
    row.enabled = enabled
    row.changed_at = now
    row.changed_by = requested_by or actor.id
    row.approved_by = actor.id if requested_by else None
    row.reason = reason
    row.revert_at = now + revert_after if revert_after else None
    row.revert_warned_at = None
    session.flush()
    cache.changed_in(session)
    after = _state(flow, row)
    details: dict[str, str] = {"reason": reason}
    if requested_by:
        details.update(requested_by=requested_by, approved_by=actor.id)
    record(session, actor=actor,
           action=AuditAction.FLOW_SWITCH_ENABLE if enabled else AuditAction.FLOW_SWITCH_DISABLE,
           target=Target("flow", flow.value), details=details,
           before={"enabled": before.enabled}, after={
               "enabled": after.enabled,
               "revert_at": after.revert_at.isoformat() if after.revert_at else None})
    return after


def revert_due(session: Session, now: dt.datetime | None = None) -> list[Flow]:
    """Turn back on every flow whose auto-revert time has passed (a scheduler job)."""
    now = now or utcnow()
    due = session.scalars(select(FlowSwitch).where(FlowSwitch.revert_at.is_not(None),
                                                   FlowSwitch.revert_at <= now)).all()
    reverted = []
    for row in due:
        flow = Flow(row.flow)
        set_flow(session, Actor.system("scheduler"), flow, enabled=not row.enabled,
                 reason=f"automatic revert scheduled by {row.changed_by}", now=now)
        reverted.append(flow)
    return reverted


def warn_due_reverts(session: Session, now: dt.datetime | None = None) -> list[Flow]:
    """Warn once per change that a flow reverts within ``REVERT_WARNING`` (audited, logged)."""
    now = now or utcnow()
    due = session.scalars(select(FlowSwitch).where(
        FlowSwitch.revert_at.is_not(None), FlowSwitch.revert_warned_at.is_(None),
        FlowSwitch.revert_at <= now + REVERT_WARNING).with_for_update()).all()
    warned = []
    for row in due:
        row.revert_warned_at = now
        flow = Flow(row.flow)
        turns = "on" if not row.enabled else "off"
        log.warning("flow %s turns back %s by itself at %s (changed by %s: %s)", flow.value,
                    turns, row.revert_at.isoformat(), row.changed_by, row.reason)
        record(session, actor=Actor.system("scheduler"),
               action=AuditAction.FLOW_SWITCH_REVERT_WARN, target=Target("flow", flow.value),
               details={"revert_at": row.revert_at.isoformat(), "turns": turns,
                        "changed_by": row.changed_by, "reason": row.reason})
        warned.append(flow)
    if warned:
        session.flush()
        cache.changed_in(session)
    return warned
