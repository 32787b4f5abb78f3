"""Four eyes: a change one person asks for and a different person, holding the right permission,
approves (then it is applied once, the approver as actor) or rejects; the requester may cancel.

Used by the kill switches (``console.flows.approvals``) and by key and credential actions
(``console.keys.approvals``). Each of them describes its requests with a :class:`RequestKind`
(its table, the permission a decider needs, its audit actions, how to apply an approval) and
calls :func:`file`, :func:`decide`, :func:`pending` and :func:`expire_due`; none of them commits
(the caller owns the transaction).

The rules, in one place:
- the requester can never approve or reject their own request (names compared
  case-insensitively: "Anna" is "anna");
- the decider must be an enabled console user whose roles grant ``kind.permission``, checked
  here for every entry point (a page already checks it, the shell did not: any OS user could
  approve). A shell user is the console user of the same name, see ``console.cli.os_user``;
- a request waits until ``expires_at``; past it, it cannot be decided and the scheduler (or the
  next request for the same subject) marks it expired;
- one pending request per subject (a partial UNIQUE index on the table);
- a request leaves ``pending`` through one conditional UPDATE (``WHERE status = 'pending'``), so
  of two decisions racing (a double click, two approvers, two processes) exactly one wins and
  the approved change is applied exactly once, on SQLite as on PostgreSQL;
- every step is audited in the same transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import CheckConstraint, Index, func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from console.audit import Actor, AuditAction, Target, record
from console.audit.actions import ActorType
from console.db import utcnow
from console.security.permissions import Permission, permissions_for

MAX_REASON = 500


class Decision(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    CANCEL = "cancel"


class RequestStatus:
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    ALL = (PENDING, APPROVED, REJECTED, CANCELLED, EXPIRED)


_CLOSING = {Decision.APPROVE: RequestStatus.APPROVED, Decision.REJECT: RequestStatus.REJECTED,
            Decision.CANCEL: RequestStatus.CANCELLED}
# Who may decide: people signed in to the console, and shell users (mapped to console users).
_PEOPLE = (ActorType.USER, ActorType.BREAK_GLASS, ActorType.CLI)


def same_person(a: str, b: str) -> bool:
    # Identities are compared case-insensitively (IdP usernames, OS users): "Anna" is "anna".
    return a.strip().casefold() == b.strip().casefold()


def request_table_args(table: str, subject: str) -> tuple:
    """The invariants every request table shares (pass them in ``__table_args__``)."""
    values = ", ".join(repr(v) for v in RequestStatus.ALL)
    return (
        CheckConstraint(f"status IN ({values})", name="status_known"),
        CheckConstraint("(status = 'pending') = (decided_at IS NULL)",
                        name="decided_unless_pending"),
        CheckConstraint("(decided_by IS NULL) = (decided_at IS NULL)", name="decided_by_with_at"),
        CheckConstraint("expires_at > requested_at", name="expires_after_request"),
        # One open request per subject: two people asking at once cannot both be approved.
        Index(f"uq_{table}_pending_{subject}", subject, unique=True,
              sqlite_where=text("status = 'pending'"),
              postgresql_where=text("status = 'pending'")),
        # The expiry job: pending requests by expiry time.
        Index(f"ix_{table}_status_expires", "status", "expires_at"),
    )


@dataclass(frozen=True)
class RequestKind:
    """What one kind of four-eyes request is. ``audit`` maps "request" and every closing status
    (approved, rejected, cancelled, expired) to its audit action; ``apply`` carries out an
    approved request (as the approver) and returns what the caller shows; ``closed`` runs after
    a request is rejected, cancelled or expired (e.g. to drop material staged for it)."""

    model: type
    subject: str  # the column holding what the request is about (one pending per value)
    permission: Permission
    refused: type[Exception]  # raised, with a message safe to show, for every refusal
    audit: Mapping[str, AuditAction]
    target: Callable[[Any], Target]
    details: Callable[[Any], dict]
    apply: Callable[[Session, Actor, Any, dt.datetime], Any]
    closed: Callable[[Session, Any, str], None] | None = None
    # How the refusals name a request: "request #7" (flows) or "key request #7".
    noun: str = "request"


@dataclass(frozen=True)
class Decided:
    request: Any
    result: Any = None  # what ``kind.apply`` returned (approvals only)


def check_reason(reason: str | None, refused: type[Exception]) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise refused("a reason is required")
    if len(reason) > MAX_REASON:
        raise refused(f"the reason is longer than {MAX_REASON} characters")
    return reason


def check_decider(session: Session, actor: Actor, permission: Permission,
                  refused: type[Exception]) -> None:
    """The decider is a person with an enabled console account granting ``permission``."""
    from console.auth.models import User

    if actor.type not in _PEOPLE:
        raise refused(f"{actor.type}:{actor.id} cannot decide a request; a person must")
    user = session.scalar(select(User).where(
        func.lower(User.username) == actor.id.strip().casefold()))
    if user is None:
        raise refused(f"{actor.id} is not a console user: only a console user holding the "
                      f"{permission.value} permission can decide (from a shell, log in as "
                      "the OS user of the same name)")
    if user.disabled:
        raise refused(f"the console account {user.username} is disabled")
    if permission not in permissions_for(user.role_names):
        raise refused(f"{user.username} does not hold the {permission.value} permission "
                      f"(roles: {', '.join(user.role_names) or 'none'})")


def pending(session: Session, kind: RequestKind, now: dt.datetime | None = None,
            **where: Any) -> list:
    """Requests still waiting (those past their expiry are left to the job, not shown)."""
    model = kind.model
    now = now or utcnow()
    query = select(model).where(model.status == RequestStatus.PENDING, model.expires_at > now)
    for column, value in where.items():
        query = query.where(getattr(model, column) == value)
    return list(session.scalars(query.order_by(model.requested_at, model.id)))


def file(session: Session, actor: Actor, kind: RequestKind, request: Any, *,
         minutes: int, now: dt.datetime, describe: str) -> Any:
    """Add ``request`` (its own fields set, ``reason`` validated) as pending for ``minutes``.

    Refused while another request for the same subject waits; one that has expired without the
    job having run yet is expired here (audited). ``describe`` names the subject in refusals."""
    model, subject = kind.model, getattr(request, kind.subject)
    waiting = session.scalar(select(model).where(
        getattr(model, kind.subject) == subject, model.status == RequestStatus.PENDING)
        .with_for_update())
    if waiting is not None and waiting.expires_at > now:
        raise kind.refused(f"{kind.noun} #{waiting.id} for {describe} is already waiting "
                           f"for approval (by {waiting.requested_by})")
    if waiting is not None:
        _close(session, Actor.system("scheduler"), kind, waiting, RequestStatus.EXPIRED, now)
    request.requested_by = actor.id
    request.requested_at = now
    request.expires_at = now + dt.timedelta(minutes=minutes)
    request.status = RequestStatus.PENDING
    try:
        with session.begin_nested():  # a concurrent request for the same subject won the index
            session.add(request)
    except IntegrityError:
        raise kind.refused(f"another request for {describe} was filed at the same time; "
                           "reload and decide that one") from None
    record(session, actor=actor, action=kind.audit["request"], target=kind.target(request),
           details={"request": request.id, **kind.details(request),
                    "expires_at": request.expires_at.isoformat()})
    return request


def decide(session: Session, actor: Actor, kind: RequestKind, request_id: int,
           decision: Decision, *, now: dt.datetime | None = None) -> Decided:
    """Approve (applies it, once), reject, or cancel (the requester only) a pending request."""
    now = now or utcnow()
    refused = kind.refused
    request = session.scalar(select(kind.model).where(kind.model.id == request_id)
                             .with_for_update().execution_options(populate_existing=True))
    if request is None:
        raise refused(f"no {kind.noun} #{request_id}")
    if request.status != RequestStatus.PENDING:
        raise refused(f"{kind.noun} #{request_id} is already {request.status}")
    if request.expires_at <= now:
        raise refused(f"{kind.noun} #{request_id} has expired; ask again")
    own = same_person(actor.id, request.requested_by)
    if decision is Decision.CANCEL:
        if not own:
            raise refused(f"only {request.requested_by} can cancel {kind.noun} "
                          f"#{request_id}; reject it instead")
    elif own:
        raise refused(f"{kind.noun} #{request_id} needs a second person: you asked for "
                      "it, so you cannot " + decision.value + " it")
    else:
        check_decider(session, actor, kind.permission, refused)
    _close(session, actor, kind, request, _CLOSING[decision], now)
    if decision is not Decision.APPROVE:
        return Decided(request)
    return Decided(request, kind.apply(session, actor, request, now))


def expire_due(session: Session, kind: RequestKind, now: dt.datetime | None = None) -> list[int]:
    """Mark pending requests past their expiry as expired, each audited (a scheduler job)."""
    model = kind.model
    now = now or utcnow()
    due = session.scalars(select(model).where(
        model.status == RequestStatus.PENDING, model.expires_at <= now)
        .with_for_update()).all()
    expired = []
    for request in due:
        try:
            _close(session, Actor.system("scheduler"), kind, request, RequestStatus.EXPIRED, now)
        except kind.refused:  # decided meanwhile by someone else: nothing to expire
            continue
        expired.append(request.id)
    return expired


def _close(session: Session, actor: Actor, kind: RequestKind, request: Any, status: str,
           now: dt.datetime) -> None:
    """pending → ``status``, through one conditional UPDATE: the loser of a race is refused."""
    model = kind.model
    won = session.execute(
        update(model).where(model.id == request.id, model.status == RequestStatus.PENDING)
        .values(status=status, decided_by=actor.id[:200], decided_at=now)
        .execution_options(synchronize_session=False)).rowcount
    if won != 1:
        session.refresh(request)
        raise kind.refused(f"{kind.noun} #{request.id} is already {request.status}")
    session.refresh(request)
    record(session, actor=actor, action=kind.audit[status], target=kind.target(request),
           details={"request": request.id, **kind.details(request),
                    "requested_by": request.requested_by},
           before={"status": RequestStatus.PENDING}, after={"status": status})
    if status != RequestStatus.APPROVED and kind.closed is not None:
        kind.closed(session, request, status)
