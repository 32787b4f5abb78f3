"""Four-eyes kill switches: for a flow in FLOWS_REQUIRE_APPROVAL, a change is a request that a
second person approves (then it is applied, the approver in its audit row) or rejects.

The rules (requester never decides, the decider holds KILL_SWITCHES, expiry, one pending request
per flow, exactly-once application) live in ``console.four_eyes``, shared with the key and
credential actions; this module says what a flow change request is. A request waits at most
FLOWS_APPROVAL_MINUTES; the scheduler then marks it expired (audited).
Routes and the CLI call ``change`` and ``decide``; neither commits (the caller owns it).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.orm import Session

from console import four_eyes
from console.audit import Actor, AuditAction, Target
from console.db import utcnow
from console.flows.models import FlowChangeRequest, RequestStatus
from console.flows.services import Flow, FlowChangeRefused, FlowState, set_flow, validate_change
from console.flows.settings import FlowsSettings
from console.four_eyes import Decision, same_person
from console.security.permissions import Permission

__all__ = [
    "FLOW_REQUESTS",
    "ChangeResult",
    "Decision",
    "RequestStatus",
    "change",
    "decide",
    "expire_due",
    "pending",
    "same_person",
]


@dataclass(frozen=True)
class ChangeResult:
    """Exactly one is set: the switch was changed (``state``) or a request waits (``request``)."""
    state: FlowState | None = None
    request: FlowChangeRequest | None = None


def _apply(session: Session, actor: Actor, request: FlowChangeRequest,
           now: dt.datetime) -> FlowState:
    revert = dt.timedelta(minutes=request.revert_minutes) if request.revert_minutes else None
    return set_flow(session, actor, Flow(request.flow), enabled=request.enabled,
                    reason=request.reason, revert_after=revert, now=now,
                    requested_by=request.requested_by)


FLOW_REQUESTS = four_eyes.RequestKind(
    model=FlowChangeRequest, subject="flow", permission=Permission.KILL_SWITCHES,
    refused=FlowChangeRefused,
    audit={"request": AuditAction.FLOW_CHANGE_REQUEST,
           RequestStatus.APPROVED: AuditAction.FLOW_CHANGE_APPROVE,
           RequestStatus.REJECTED: AuditAction.FLOW_CHANGE_REJECT,
           RequestStatus.CANCELLED: AuditAction.FLOW_CHANGE_CANCEL,
           RequestStatus.EXPIRED: AuditAction.FLOW_CHANGE_EXPIRE},
    target=lambda request: Target("flow", request.flow),
    details=lambda request: {"enabled": request.enabled, "reason": request.reason,
                             "revert_minutes": request.revert_minutes},
    apply=_apply, noun="change request")


def pending(session: Session, now: dt.datetime | None = None) -> list[FlowChangeRequest]:
    """Requests still waiting (those past their expiry are left to the job, not shown)."""
    return four_eyes.pending(session, FLOW_REQUESTS, now)


def change(session: Session, actor: Actor, flow: Flow, *, enabled: bool, reason: str,
           policy: FlowsSettings, revert_after: dt.timedelta | None = None,
           now: dt.datetime | None = None) -> ChangeResult:
    """Apply the change, or (for a four-eyes flow) file it as a request for someone else."""
    if not policy.needs_approval(flow):
        return ChangeResult(state=set_flow(session, actor, flow, enabled=enabled, reason=reason,
                                           revert_after=revert_after, now=now))
    reason = validate_change(reason, revert_after)
    minutes = int(revert_after.total_seconds() // 60) if revert_after else None
    request = four_eyes.file(
        session, actor, FLOW_REQUESTS,
        FlowChangeRequest(flow=flow.value, enabled=enabled, reason=reason,
                          revert_minutes=minutes),
        minutes=policy.approval_minutes, now=now or utcnow(), describe=flow.value)
    return ChangeResult(request=request)


def decide(session: Session, actor: Actor, request_id: int, decision: Decision, *,
           now: dt.datetime | None = None) -> ChangeResult:
    """Approve (applies the change), reject, or cancel (the requester only) a pending request."""
    decided = four_eyes.decide(session, actor, FLOW_REQUESTS, request_id, decision, now=now)
    return ChangeResult(state=decided.result, request=decided.request)


def expire_due(session: Session, now: dt.datetime | None = None) -> list[int]:
    """Mark pending requests past their expiry as expired, each audited (a scheduler job)."""
    return four_eyes.expire_due(session, FLOW_REQUESTS, now)
