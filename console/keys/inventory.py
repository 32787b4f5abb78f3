"""The inventory's lifecycle, in one place: create, activate, schedule retirement, retire, revoke.

Allowed transitions (anything else is refused with :class:`TransitionRefused`)::

    pending  -> active, revoked
    active   -> retiring (with a deadline), retired, revoked
    retiring -> active (rotation called off), retired, revoked
    retired  -> revoked
    revoked  -> (nothing: a revoked credential is never trusted again)

Every transition writes a ``credential_event`` row and an audit row in the caller's transaction,
with a reason. A credential tagged for one environment is refused by the other
(:class:`EnvironmentRefused`): the service takes the running environment on every call. Web
routes put step-up in front of these calls; the CLI is on-call's shell access.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from console.audit.actions import AuditAction
from console.audit.services import Actor, Target, record
from console.keys.models import Credential, CredentialEvent

REASON_MAX = 500


class Kind(StrEnum):
    FINCI_API_TOKEN = "finci_api_token"  # noqa: S105 - a kind's name, not a token
    FINCI_API_SECRET = "finci_api_secret"  # noqa: S105
    WEBHOOK_SECRET = "webhook_secret"  # noqa: S105
    CARD_DATA_KEY = "card_data_key"
    TLS_CERTIFICATE = "tls_certificate"
    SSO_CLIENT_SECRET = "sso_client_secret"  # noqa: S105


class State(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    RETIRING = "retiring"
    RETIRED = "retired"
    REVOKED = "revoked"


ALLOWED: dict[State, frozenset[State]] = {
    State.PENDING: frozenset({State.ACTIVE, State.REVOKED}),
    State.ACTIVE: frozenset({State.RETIRING, State.RETIRED, State.REVOKED}),
    State.RETIRING: frozenset({State.ACTIVE, State.RETIRED, State.REVOKED}),
    State.RETIRED: frozenset({State.REVOKED}),
    State.REVOKED: frozenset(),
}
_ACTIONS = {State.ACTIVE: AuditAction.KEYS_CREDENTIAL_ACTIVATE,
            State.RETIRING: AuditAction.KEYS_CREDENTIAL_SCHEDULE_RETIRE,
            State.RETIRED: AuditAction.KEYS_CREDENTIAL_RETIRE,
            State.REVOKED: AuditAction.KEYS_CREDENTIAL_REVOKE}


class InventoryError(ValueError):
    """Refused; the message says why and is safe to show."""


class TransitionRefused(InventoryError):
    pass


class EnvironmentRefused(InventoryError):
    pass


class CredentialNotFound(InventoryError, LookupError):
    pass


def fingerprint(value: bytes) -> str:
    """Names a value without revealing it: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(value).hexdigest()[:16]


def _reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise InventoryError("a reason is required")
    if len(reason) > REASON_MAX:
        raise InventoryError(f"the reason is longer than {REASON_MAX} characters")
    return reason


def check_environment(credential: Credential, environment: str) -> Credential:
    if credential.environment != str(environment):
        raise EnvironmentRefused(
            f"{credential.kind} {credential.fingerprint} is tagged for {credential.environment} "
            f"and is refused in {environment}")
    return credential


def _summary(credential: Credential) -> dict:
    return {"kind": credential.kind, "fingerprint": credential.fingerprint,
            "environment": credential.environment, "name": credential.name}


def _event(session: Session, credential: Credential, actor: Actor, at: dt.datetime,
           before: State | None, after: State, reason: str) -> None:
    session.add(CredentialEvent(credential_id=credential.id, at=at,
                                from_status=before.value if before else None,
                                to_status=after.value, actor=f"{actor.type}:{actor.id}"[:200],
                                reason=reason))


def get(session: Session, credential_id: int, environment: str) -> Credential:
    credential = session.get(Credential, credential_id)
    if credential is None:
        raise CredentialNotFound(f"no credential #{credential_id}")
    return check_environment(credential, environment)


def find(session: Session, kind: str, fingerprint_: str, environment: str) -> Credential | None:
    return session.scalar(select(Credential).where(
        Credential.kind == str(kind), Credential.environment == str(environment),
        Credential.fingerprint == fingerprint_))


def create(session: Session, actor: Actor, *, kind: str, name: str, environment: str,
           fingerprint: str, at: dt.datetime, reason: str, store_name: str | None = None,
           expires_at: dt.datetime | None = None, activate: bool = False) -> Credential:
    reason = _reason(reason)
    if environment not in ("sandbox", "production"):
        raise InventoryError(f"unknown environment {environment!r}")
    if find(session, kind, fingerprint, environment) is not None:
        raise InventoryError(f"{kind} {fingerprint} is already in the inventory")
    state = State.ACTIVE if activate else State.PENDING
    credential = Credential(kind=str(kind), name=name[:200], environment=str(environment),
                            fingerprint=fingerprint, store_name=store_name, status=state.value,
                            created_at=at, created_by=f"{actor.type}:{actor.id}"[:200],
                            activated_at=at if activate else None, expires_at=expires_at)
    session.add(credential)
    session.flush()
    _event(session, credential, actor, at, None, state, reason)
    record(session, actor=actor, action=AuditAction.KEYS_CREDENTIAL_CREATE,
           target=Target("credential", str(credential.id)),
           details={**_summary(credential), "status": state.value, "reason": reason})
    return credential


def transition(session: Session, actor: Actor, credential: Credential, to: State, *,
               environment: str, at: dt.datetime, reason: str,
               retire_after: dt.datetime | None = None) -> Credential:
    """The one place a status changes."""
    reason = _reason(reason)
    check_environment(credential, environment)
    current = State(credential.status)
    if to not in ALLOWED[current]:
        raise TransitionRefused(f"{credential.kind} {credential.fingerprint} is {current.value}"
                                f" and cannot become {to.value}")
    if to is State.RETIRING:
        if retire_after is None or retire_after <= at:
            raise TransitionRefused("retiring needs a deadline in the future")
        credential.retire_after = retire_after
    else:
        credential.retire_after = None
    credential.status = to.value
    if to is State.ACTIVE and credential.activated_at is None:
        credential.activated_at = at
    if to is State.RETIRED:
        credential.retired_at = at
    if to is State.REVOKED:
        credential.revoked_at = at
    _event(session, credential, actor, at, current, to, reason)
    details = {**_summary(credential), "from": current.value, "reason": reason}
    if retire_after is not None:
        details["retire_after"] = retire_after.strftime("%Y-%m-%d %H:%M UTC")
    record(session, actor=actor, action=_ACTIONS[to],
           target=Target("credential", str(credential.id)), details=details)
    session.flush()
    return credential


def activate(session, actor, credential, **kw) -> Credential:
    return transition(session, actor, credential, State.ACTIVE, **kw)


def schedule_retire(session, actor, credential, *, retire_after, **kw) -> Credential:
    return transition(session, actor, credential, State.RETIRING, retire_after=retire_after,
                      **kw)


def retire(session, actor, credential, **kw) -> Credential:
    return transition(session, actor, credential, State.RETIRED, **kw)


def revoke(session, actor, credential, **kw) -> Credential:
    return transition(session, actor, credential, State.REVOKED, **kw)


def listing(session: Session, environment: str) -> list[Credential]:
    """This environment's credentials, newest first; the other environment's are not shown."""
    return list(session.scalars(select(Credential)
                                .where(Credential.environment == str(environment))
                                .order_by(Credential.kind, Credential.created_at.desc(),
                                          Credential.id.desc())))


def history(session: Session, credential_ids: list[int]) -> dict[int, list[CredentialEvent]]:
    found: dict[int, list[CredentialEvent]] = {i: [] for i in credential_ids}
    if credential_ids:
        for event in session.scalars(select(CredentialEvent)
                                     .where(CredentialEvent.credential_id.in_(credential_ids))
                                     .order_by(CredentialEvent.at, CredentialEvent.id)):
            found[event.credential_id].append(event)
    return found


def retire_overdue(session: Session, environment: str, at: dt.datetime, *,
                   actor: Actor | None = None) -> int:
    """Scheduled: retiring credentials past their deadline become retired (they are refused
    from the deadline on anyway; this makes the inventory say so)."""
    overdue = list(session.scalars(select(Credential).where(
        Credential.environment == str(environment), Credential.status == State.RETIRING.value,
        Credential.retire_after <= at)))
    for credential in overdue:
        retire(session, actor or Actor.system("keys.retire_overdue"), credential,
               environment=environment,
               at=at, reason="overlap window ended")
    return len(overdue)
