"""Sign-in, sign-out and user administration: the one service layer the OIDC callback, the
break-glass form, the CLI and the test fixtures all call. Services take the database session and
the acting ``Actor`` explicitly, only flush, and audit in the same transaction."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from console.audit import Actor, AuditAction, Outcome, Target, record
from console.audit.actions import ActorType
from console.auth.models import BREAK_GLASS, SSO, User, UserRole
from console.auth.sessions import (
    SessionLimits,
    StartedSession,
    end_session,
    end_sessions_of,
    start_session,
)
from console.security.permissions import Permission, Role, permissions_for


@dataclass(frozen=True)
class Identity:
    """Who the identity provider (or a break-glass check) says is signing in."""

    issuer: str
    subject: str
    username: str
    display_name: str
    email: str | None
    roles: frozenset[Role]
    reveal_card_data: bool = False
    # When the person last authenticated (ID token auth_time); None when the IdP did not say.
    auth_time: dt.datetime | None = None
    kind: str = SSO


class LoginRefused(Exception):
    """Sign-in is not allowed; ``reason`` is a short code for the audit log."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


def user_actor(user: User, origin: Actor, *, break_glass: bool = False) -> Actor:
    kind = ActorType.BREAK_GLASS if break_glass or user.kind == BREAK_GLASS else ActorType.USER
    return Actor(kind, user.username, source_ip=origin.source_ip, request_id=origin.request_id)


def user_target(user: User) -> Target:
    return Target("user", user.username)


def permissions_of(user: User, *, break_glass: bool = False) -> frozenset[Permission]:
    granted = set(permissions_for(user.role_names))
    # Emergency access never extends to card data.
    if user.reveal_card_data and not break_glass and user.kind == SSO:
        granted.add(Permission.REVEAL_CARD_DATA)
    return frozenset(granted)


def _unique_username(db: Session, wanted: str, subject: str) -> str:
    base = (wanted or subject).strip()[:180] or subject[:180]
    taken = db.scalar(select(User.id).where(User.username == base))
    if taken is None:
        return base
    # Same display name from another account (or another issuer): keep both distinguishable.
    return f"{base}~{hashlib.sha256(subject.encode()).hexdigest()[:8]}"


def _sync_roles(db: Session, user: User, roles: frozenset[Role], actor: Actor) -> None:
    wanted = {role.value for role in roles}
    current = set(user.role_names)
    if wanted == current:
        return
    for held in list(user.roles):
        if held.role not in wanted:
            user.roles.remove(held)
    for role in sorted(wanted - current):
        user.roles.append(UserRole(role=role))
    db.flush()
    record(db, actor=actor, action=AuditAction.AUTH_ROLES_CHANGE, target=user_target(user),
           before={"roles": sorted(current)}, after={"roles": sorted(wanted)})


def _refuse(db: Session, origin: Actor, identity: Identity, reason: str, message: str,
            *, action: AuditAction) -> LoginRefused:
    record(db, actor=origin, action=action, outcome=Outcome.DENIED,
           target=Target("user", identity.username),
           details={"reason": reason, "issuer": identity.issuer, "subject": identity.subject})
    return LoginRefused(reason, message)


def login(db: Session, identity: Identity, *, origin: Actor, at: dt.datetime,
          limits: SessionLimits, replaces: int | None = None, break_glass: bool = False,
          step_up_of: int | None = None) -> tuple[User, StartedSession]:
    """Record the sign-in (user, roles, audit) and start a new session for it.

    ``origin`` is the anonymous actor of the request (source IP, request id). ``replaces`` is
    the caller's current session, ended in the same transaction (session id renewed at login).
    ``step_up_of`` is the user id of a step-up: the fresh login must be the same person.
    """
    action = (AuditAction.AUTH_BREAK_GLASS_LOGIN if break_glass
              else AuditAction.AUTH_SESSION_STEP_UP if step_up_of is not None
              else AuditAction.AUTH_SESSION_LOGIN)
    user = db.scalar(select(User).where(User.issuer == identity.issuer,
                                        User.subject == identity.subject))
    if step_up_of is not None and (user is None or user.id != step_up_of):
        raise _refuse(db, origin, identity, "step_up_other_user",
                      "You confirmed your identity as a different user. Sign out first.",
                      action=action)
    if user is None:
        if not identity.roles:
            raise _refuse(db, origin, identity, "no_role",
                          "Your account has no role in this console.", action=action)
        user = User(kind=identity.kind, issuer=identity.issuer, subject=identity.subject,
                    username=_unique_username(db, identity.username, identity.subject),
                    display_name=identity.display_name[:200], email=identity.email,
                    reveal_card_data=identity.reveal_card_data, created_at=at)
        db.add(user)
        user.roles = [UserRole(role=role.value) for role in sorted(identity.roles)]
        db.flush()
        record(db, actor=user_actor(user, origin, break_glass=break_glass),
               action=AuditAction.AUTH_USER_CREATE, target=user_target(user),
               after={"roles": user.role_names, "kind": user.kind})
    else:
        if user.disabled:
            raise _refuse(db, origin, identity, "disabled",
                          "Your console access has been disabled.", action=action)
        actor = user_actor(user, origin, break_glass=break_glass)
        if identity.kind == SSO:
            # The IdP is the source of truth for roles; a break-glass account keeps its own.
            _sync_roles(db, user, identity.roles, actor)
            user.display_name = identity.display_name[:200]
            user.email = identity.email
            user.reveal_card_data = identity.reveal_card_data
        if not user.roles:
            end_sessions_of(db, user.id)
            raise _refuse(db, origin, identity, "no_role",
                          "Your account has no role in this console.", action=action)
    user.last_login_at = at
    user.last_seen_at = at
    started = start_session(db, user, at=at, limits=limits, auth_time=identity.auth_time,
                            break_glass=break_glass, replaces=replaces)
    record(db, actor=user_actor(user, origin, break_glass=break_glass), action=action,
           target=user_target(user),
           details={"method": "break_glass" if break_glass else "oidc",
                    "roles": user.role_names, "session": started.record.id,
                    "auth_time": identity.auth_time.isoformat() if identity.auth_time else None})
    return user, started


def logout(db: Session, *, user: User | None, session_id: int | None, origin: Actor,
           break_glass: bool = False) -> None:
    if session_id is not None:
        end_session(db, session_id)
    if user is not None:
        record(db, actor=user_actor(user, origin, break_glass=break_glass),
               action=AuditAction.AUTH_SESSION_LOGOUT, target=user_target(user),
               details={"session": session_id})


def record_denial(db: Session, *, actor: Actor, permission: Permission | str, status: int,
                  method: str, path: str) -> None:
    record(db, actor=actor, action=AuditAction.AUTH_ACCESS_DENY, outcome=Outcome.DENIED,
           details={"permission": str(permission), "status": status, "method": method,
                    "path": path[:300]})


class UserAdminError(Exception):
    pass


def disable_user(db: Session, user_id: int, *, actor: Actor, acting_user_id: int | None,
                 at: dt.datetime) -> User | None:
    """Disable a user and end all their sessions at once. None when there is no such user."""
    user = db.get(User, user_id)
    if user is None:
        return None
    if user.id == acting_user_id:
        raise UserAdminError("You cannot disable your own account.")
    if user.disabled:
        return user
    user.disabled_at = at
    user.disabled_by = actor.id
    ended = end_sessions_of(db, user.id)
    db.flush()
    record(db, actor=actor, action=AuditAction.AUTH_USER_DISABLE, target=user_target(user),
           before={"disabled": False}, after={"disabled": True},
           details={"sessions_ended": ended})
    return user


def enable_user(db: Session, user_id: int, *, actor: Actor) -> User | None:
    user = db.get(User, user_id)
    if user is None:
        return None
    if not user.disabled:
        return user
    user.disabled_at = None
    user.disabled_by = None
    db.flush()
    record(db, actor=actor, action=AuditAction.AUTH_USER_ENABLE, target=user_target(user),
           before={"disabled": True}, after={"disabled": False})
    return user


def list_users(db: Session) -> list[User]:
    return list(db.scalars(select(User).order_by(User.last_seen_at.desc().nulls_last(),
                                                 User.username)))
