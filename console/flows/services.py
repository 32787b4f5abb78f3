"""Reading and flipping flow switches. Every change is audited with before/after and a reason."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from console.audit import Actor, AuditAction, Target, record
from console.db import utcnow
from console.flows.models import FlowSwitch

MAX_REASON = 500
MAX_REVERT = dt.timedelta(days=7)


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

    @property
    def description(self) -> str:
        return DESCRIPTIONS[self.flow]

    @property
    def off_behaviour(self) -> str:
        return OFF_BEHAVIOUR[self.flow]


def _state(flow: Flow, row: FlowSwitch | None) -> FlowState:
    if row is None:
        return FlowState(flow, True, None, None, None, None)
    return FlowState(flow, row.enabled, row.changed_at, row.changed_by, row.reason, row.revert_at)


def is_enabled(session: Session, flow: Flow) -> bool:
    """One primary-key read; cheap enough for the authorization hot path."""
    enabled = session.scalar(select(FlowSwitch.enabled).where(FlowSwitch.flow == flow.value))
    return True if enabled is None else enabled


def require_enabled(session: Session, flow: Flow) -> None:
    """Raise ``FlowSwitchedOff`` unless ``flow`` is on. No role, admin or break-glass session
    gets past it: the switch is about the flow, not the person (the reveal of card data checks
    it before anything else)."""
    if not is_enabled(session, flow):
        raise FlowSwitchedOff(flow)


def get_state(session: Session, flow: Flow) -> FlowState:
    return _state(flow, session.get(FlowSwitch, flow.value))


def all_states(session: Session) -> list[FlowState]:
    rows = {row.flow: row for row in session.scalars(select(FlowSwitch))}
    return [_state(flow, rows.get(flow.value)) for flow in Flow]


def set_flow(session: Session, actor: Actor, flow: Flow, *, enabled: bool, reason: str,
             revert_after: dt.timedelta | None = None, now: dt.datetime | None = None
             ) -> FlowState:
    reason = (reason or "").strip()
    if not reason:
        raise FlowChangeRefused("a reason is required")
    if len(reason) > MAX_REASON:
        raise FlowChangeRefused(f"the reason is longer than {MAX_REASON} characters")
    if revert_after is not None and not dt.timedelta(0) < revert_after <= MAX_REVERT:
        raise FlowChangeRefused("auto-revert must be between 1 minute and 7 days")
    now = now or utcnow()
    # Lock the row so two on-call engineers flipping at once produce two ordered audit rows.
    row = session.scalar(select(FlowSwitch).where(FlowSwitch.flow == flow.value)
                         .with_for_update())
    before = _state(flow, row)
    if row is None:
        row = FlowSwitch(flow=flow.value)
        session.add(row)
    row.enabled = enabled
    row.changed_at = now
    row.changed_by = actor.id
    row.reason = reason
    row.revert_at = now + revert_after if revert_after else None
    session.flush()
    after = _state(flow, row)
    record(session, actor=actor,
           action=AuditAction.FLOW_SWITCH_ENABLE if enabled else AuditAction.FLOW_SWITCH_DISABLE,
           target=Target("flow", flow.value), details={"reason": reason},
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
