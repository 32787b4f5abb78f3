"""Four-eyes kill switches: for a flow in FLOWS_REQUIRE_APPROVAL, a change is a request that a
second person approves (then it is applied, the approver in its audit row) or rejects.

The requester can cancel their own request but never approve or reject it. A request waits at
most FLOWS_APPROVAL_MINUTES; the scheduler then marks it expired (audited). One pending request
per flow (a partial UNIQUE index): two people asking at once cannot both be applied.
Routes and the CLI call ``change`` and ``decide``; neither commits (the caller owns it).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from console.audit import Actor, AuditAction, Target, record
from console.db import utcnow
from console.flows.models import FlowChangeRequest, RequestStatus
from console.flows.services import Flow, FlowChangeRefused, FlowState, set_flow, validate_change
from console.flows.settings import FlowsSettings


class Decision(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    CANCEL = "cancel"


@dataclass(frozen=True)
class ChangeResult:
    """Exactly one is set: the switch was changed (``state``) or a request waits (``request``)."""
    state: FlowState | None = None
    request: FlowChangeRequest | None = None


def same_person(a: str, b: str) -> bool:
    # Identities are compared case-insensitively (IdP usernames, OS users): "Anna" is "anna".
    return a.strip().casefold() == b.strip().casefold()


def pending(session: Session, now: dt.datetime | None = None) -> list[FlowChangeRequest]:
    """Requests still waiting (those past their expiry are left to the job, not shown)."""
    now = now or utcnow()
    return list(session.scalars(
        select(FlowChangeRequest).where(FlowChangeRequest.status == RequestStatus.PENDING,
                                        FlowChangeRequest.expires_at > now)
        .order_by(FlowChangeRequest.requested_at)))


def change(session: Session, actor: Actor, flow: Flow, *, enabled: bool, reason: str,
           policy: FlowsSettings, revert_after: dt.timedelta | None = None,
           now: dt.datetime | None = None) -> ChangeResult:
    """Apply the change, or (for a four-eyes flow) file it as a request for someone else."""
    if not policy.needs_approval(flow):
        return ChangeResult(state=set_flow(session, actor, flow, enabled=enabled, reason=reason,
                                           revert_after=revert_after, now=now))
    reason = validate_change(reason, revert_after)
    now = now or utcnow()
    waiting = session.scalar(select(FlowChangeRequest).where(
        FlowChangeRequest.flow == flow.value, FlowChangeRequest.status == RequestStatus.PENDING)
        .with_for_update())
    if waiting is not None and waiting.expires_at > now:
        raise FlowChangeRefused(f"request #{waiting.id} for {flow.value} is already waiting "
                                f"for approval (by {waiting.requested_by})")
    if waiting is not None:  # expired, the job has not run yet: expire it here, audited
        _close(session, Actor.system("scheduler"), waiting, RequestStatus.EXPIRED,
               AuditAction.FLOW_CHANGE_EXPIRE, now)
    minutes = int(revert_after.total_seconds() // 60) if revert_after else None
    request = FlowChangeRequest(
        flow=flow.value, enabled=enabled, reason=reason, revert_minutes=minutes,
        requested_by=actor.id, requested_at=now,
        expires_at=now + dt.timedelta(minutes=policy.approval_minutes),
        status=RequestStatus.PENDING)
    try:
        with session.begin_nested():  # a concurrent request for the same flow won the index
            session.add(request)
    except IntegrityError:
        raise FlowChangeRefused(f"another request for {flow.value} was filed at the same time; "
                                "reload and decide that one") from None
    record(session, actor=actor, action=AuditAction.FLOW_CHANGE_REQUEST,
           target=Target("flow", flow.value),
           details={"request": request.id, "enabled": enabled, "reason": reason,
                    "revert_minutes": minutes, "expires_at": request.expires_at.isoformat()})
    return ChangeResult(request=request)


def decide(session: Session, actor: Actor, request_id: int, decision: Decision, *,
           now: dt.datetime | None = None) -> ChangeResult:
    """Approve (applies the change), reject, or cancel (the requester only) a pending request."""
    now = now or utcnow()
    request = session.scalar(select(FlowChangeRequest).where(FlowChangeRequest.id == request_id)
                             .with_for_update().execution_options(populate_existing=True))
    if request is None:
        raise FlowChangeRefused(f"no change request #{request_id}")
    if request.status != RequestStatus.PENDING:
        raise FlowChangeRefused(f"request #{request_id} is already {request.status}")
    if request.expires_at <= now:
        raise FlowChangeRefused(f"request #{request_id} has expired; ask again")
    own = same_person(actor.id, request.requested_by)
    if decision is Decision.CANCEL:
        if not own:
            raise FlowChangeRefused(f"only {request.requested_by} can cancel request "
                                    f"#{request_id}; reject it instead")
        _close(session, actor, request, RequestStatus.CANCELLED, AuditAction.FLOW_CHANGE_CANCEL,
               now)
        return ChangeResult(request=request)
    if own:
        raise FlowChangeRefused(f"request #{request_id} needs a second person: you asked for "
                                "it, so you cannot " + decision.value + " it")
    if decision is Decision.REJECT:
        _close(session, actor, request, RequestStatus.REJECTED, AuditAction.FLOW_CHANGE_REJECT,
               now)
        return ChangeResult(request=request)
    _close(session, actor, request, RequestStatus.APPROVED, AuditAction.FLOW_CHANGE_APPROVE, now)
    revert = dt.timedelta(minutes=request.revert_minutes) if request.revert_minutes else None
    state = set_flow(session, actor, Flow(request.flow), enabled=request.enabled,
                     reason=request.reason, revert_after=revert, now=now,
                     requested_by=request.requested_by)
    return ChangeResult(state=state, request=request)


def expire_due(session: Session, now: dt.datetime | None = None) -> list[int]:
    """Mark pending requests past their expiry as expired, each audited (a scheduler job)."""
    now = now or utcnow()
    due = session.scalars(select(FlowChangeRequest).where(
        FlowChangeRequest.status == RequestStatus.PENDING, FlowChangeRequest.expires_at <= now)
        .with_for_update()).all()
    for request in due:
        _close(session, Actor.system("scheduler"), request, RequestStatus.EXPIRED,
               AuditAction.FLOW_CHANGE_EXPIRE, now)
    return [request.id for request in due]


def _close(session: Session, actor: Actor, request: FlowChangeRequest, status: str,
           action: AuditAction, now: dt.datetime) -> None:
    request.status = status
    request.decided_by = actor.id
    request.decided_at = now
    session.flush()
    record(session, actor=actor, action=action, target=Target("flow", request.flow),
           details={"request": request.id, "enabled": request.enabled, "reason": request.reason,
                    "requested_by": request.requested_by},
           before={"status": RequestStatus.PENDING}, after={"status": status})
