"""Writing audit events. ``record`` runs inside the caller's transaction: if the audit write fails
the whole unit of work fails, so there is never an action without its audit row."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import update
from sqlalchemy.orm import Session

from console.audit.actions import ActorType, AuditAction, Outcome
from console.audit.chain import canonical_json, hashed_fields, row_hash
from console.audit.models import GENESIS_HASH, AuditCheckpoint, AuditEvent, AuditHead
from console.db import utcnow
from console.security.redaction import redact_value


@dataclass(frozen=True)
class Actor:
    """Who did it and from where. Services take it explicitly so jobs and clicks audit alike."""

    type: ActorType
    id: str
    source_ip: str | None = None
    request_id: str | None = None

    @classmethod
    def system(cls, name: str) -> Actor:
        return cls(ActorType.SYSTEM, name)

    @classmethod
    def cli(cls, user: str) -> Actor:
        return cls(ActorType.CLI, user)


@dataclass(frozen=True)
class Target:
    type: str
    id: str


class AuditTamperingRefused(RuntimeError):
    """The application tried to change or delete an audit row."""


def _diff(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any]:
    before, after = before or {}, after or {}
    changed = {}
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            changed[key] = {"before": before.get(key), "after": after.get(key)}
    return changed


def record(
    session: Session,
    *,
    actor: Actor,
    action: AuditAction,
    target: Target | None = None,
    outcome: Outcome = Outcome.SUCCESS,
    details: dict[str, Any] | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    at: dt.datetime | None = None,
) -> AuditEvent:
    payload: dict[str, Any] = dict(details or {})
    if before is not None or after is not None:
        payload["changes"] = _diff(before, after)
    # Card numbers never reach the audit log, whatever a caller passes in.
    details_text = canonical_json(redact_value(payload))

    # Taking the head row first serialises concurrent writers (row lock / SQLite write lock).
    head = session.execute(
        update(AuditHead).where(AuditHead.id == 1).values(seq=AuditHead.seq + 1)
        .returning(AuditHead.seq, AuditHead.row_hash)
    ).one_or_none()
    if head is None:
        seq, prev = 1, GENESIS_HASH
        session.add(AuditHead(id=1, seq=1, row_hash=GENESIS_HASH))
        session.flush()
    else:
        seq, prev = head.seq, head.row_hash

    occurred_at = (at or utcnow()).astimezone(dt.UTC)
    fields = hashed_fields(
        seq=seq, occurred_at=occurred_at, actor_type=actor.type.value, actor_id=actor.id,
        action=action.value, target_type=target.type if target else None,
        target_id=target.id if target else None, outcome=outcome.value,
        source_ip=actor.source_ip, request_id=actor.request_id, details=details_text,
    )
    digest = row_hash(prev, fields)
    audit_event = AuditEvent(
        seq=seq, occurred_at=occurred_at, actor_type=fields["actor_type"], actor_id=actor.id,
        action=fields["action"], target_type=fields["target_type"],
        target_id=fields["target_id"], outcome=fields["outcome"], source_ip=actor.source_ip,
        request_id=actor.request_id, details=details_text, prev_hash=prev, row_hash=digest,
    )
    session.add(audit_event)
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(row_hash=digest))
    session.flush()
    return audit_event


@sa_event.listens_for(Session, "before_flush")
def _refuse_audit_changes(session, _flush_context, _instances):
    # The database refuses it too (triggers); this names the bug at the line that caused it.
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, AuditEvent | AuditCheckpoint) and (
                obj in session.deleted or session.is_modified(obj)):
            raise AuditTamperingRefused("audit events and checkpoints are append-only")
