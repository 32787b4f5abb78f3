"""Server-side sessions: the cookie carries a random token, the database holds the session.

Why not Flask's signed cookie: a cookie session cannot be ended from the server, so logout,
"disable this user" and idle timeouts would be advisory. Here a session is a row; deleting it
ends the session everywhere, and a replayed cookie finds nothing.

The cookie is ``__Host-console``: Secure, HttpOnly, SameSite=Lax, Path=/, no Domain, no expiry
(the server enforces the idle and absolute limits). Only the SHA-256 of the token is stored; a
256-bit random token needs no slow hash or HMAC, and a copy of the table grants no session.

Session rows are read and written in their own short transactions, separate from the request's
unit of work: Flask saves the session after the request has committed, and a request that ends
in an error must still be able to refresh (or end) its session.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Request, Response, current_app
from flask.json.tag import TaggedJSONSerializer
from flask.sessions import SessionInterface, SessionMixin
from sqlalchemy import delete, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from werkzeug.datastructures import CallbackDict
from werkzeug.exceptions import HTTPException

from console.auth.models import ConsoleSession, User
from console.db import utcnow
from console.security import csrf

log = logging.getLogger(__name__)

COOKIE_NAME = "__Host-console"
# Idle time is tracked to the minute: refreshing last_seen on every request would turn every
# page view and poll into a write. A session may therefore end up to a minute early, never late.
TOUCH_INTERVAL = dt.timedelta(seconds=60)
# static/js/polling.js marks a live panel's own refresh with this header: a background refresh is
# not the operator doing something, so it never extends the idle timeout (PCI DSS 8.2.8); it is
# still served until the session expires.
POLL_HEADER = "X-Console-Poll"
# Anonymous sessions (a CSRF token, a login in progress) are purged this often per process.
PURGE_INTERVAL = dt.timedelta(minutes=5)
# Blueprints that never get a session: machines (webhooks) and probes send no cookies and must
# not be handed one.
SESSIONLESS_BLUEPRINTS = frozenset({"ingress", "health"})

_serializer = TaggedJSONSerializer()


def now() -> dt.datetime:
    """The console's clock: tests inject ``app.extensions["clock"]`` to move time."""
    clock: Callable[[], dt.datetime] = current_app.extensions.get("clock", utcnow)
    return clock()


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def dump_data(data: dict[str, Any]) -> str:
    return _serializer.dumps(dict(data))


def load_data(text: str) -> dict[str, Any]:
    try:
        value = _serializer.loads(text or "{}")
    except ValueError:
        log.warning("unreadable session data; starting empty")
        return {}
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class SessionLimits:
    idle: dt.timedelta
    absolute: dt.timedelta

    @classmethod
    def from_settings(cls, auth) -> SessionLimits:
        return cls(idle=dt.timedelta(minutes=auth.session_idle_minutes),
                   absolute=dt.timedelta(hours=auth.session_absolute_hours))

    def expired(self, row: ConsoleSession, at: dt.datetime) -> bool:
        return at - row.last_seen_at >= self.idle or at >= row.expires_at


@dataclass
class StartedSession:
    """A session just created for a signed-in user; ``token`` goes into the cookie, once."""

    token: str = field(repr=False)
    record: ConsoleSession
    data: dict[str, Any] = field(repr=False)


def start_session(db: Session, user: User, *, at: dt.datetime, limits: SessionLimits,
                  auth_time: dt.datetime | None, break_glass: bool = False,
                  replaces: int | None = None) -> StartedSession:
    """Insert a new authenticated session (a new id: never reuse a pre-login session).

    ``replaces`` is the caller's previous session row, deleted in the same transaction.
    """
    if replaces is not None:
        db.execute(delete(ConsoleSession).where(ConsoleSession.id == replaces))
    token = new_token()
    # A fresh CSRF token belongs to the new session: one seen before sign-in is worthless.
    data = {csrf.SESSION_KEY: secrets.token_urlsafe(32)}
    record = ConsoleSession(
        token_hash=hash_token(token), user_id=user.id, break_glass=break_glass,
        created_at=at, last_seen_at=at, expires_at=at + limits.absolute, auth_time=auth_time,
        data=dump_data(data),
    )
    db.add(record)
    db.flush()
    return StartedSession(token=token, record=record, data=data)


def end_sessions_of(db: Session, user_id: int) -> int:
    """Server-side invalidation: every session of this user ends now."""
    result = db.execute(delete(ConsoleSession).where(ConsoleSession.user_id == user_id))
    return result.rowcount or 0


def end_session(db: Session, session_id: int) -> bool:
    result = db.execute(delete(ConsoleSession).where(ConsoleSession.id == session_id))
    return bool(result.rowcount)


def purge_expired(db: Session, *, at: dt.datetime, limits: SessionLimits) -> int:
    result = db.execute(delete(ConsoleSession).where(
        (ConsoleSession.last_seen_at <= at - limits.idle) | (ConsoleSession.expires_at <= at)))
    return result.rowcount or 0


def active_session_counts(db: Session, *, at: dt.datetime, limits: SessionLimits
                          ) -> dict[int, int]:
    from sqlalchemy import func

    rows = db.execute(
        select(ConsoleSession.user_id, func.count(ConsoleSession.id))
        .where(ConsoleSession.user_id.is_not(None),
               ConsoleSession.last_seen_at > at - limits.idle, ConsoleSession.expires_at > at)
        .group_by(ConsoleSession.user_id)).all()
    return {user_id: count for user_id, count in rows}


class ServerSession(CallbackDict, SessionMixin):
    """Flask's ``session`` for one request, plus what the row says about the sign-in."""

    def __init__(self, initial: dict[str, Any] | None = None, *, record_id: int | None = None,
                 user_id: int | None = None, auth_time: dt.datetime | None = None,
                 break_glass: bool = False, ephemeral: bool = False, expired: bool = False,
                 had_cookie: bool = False, needs_touch: bool = False, background: bool = False):
        def on_update(this):
            this.modified = True
            this.accessed = True

        super().__init__(initial, on_update)
        self.modified = False
        self.record_id = record_id
        self.user_id = user_id
        self.auth_time = auth_time
        self.break_glass = break_glass
        # Never stored and never sent (sessionless endpoints, or the database is down).
        self.ephemeral = ephemeral
        # The request came with a session that had just timed out (tell the user why).
        self.expired = expired
        self.had_cookie = had_cookie
        self.needs_touch = needs_touch
        # A live panel's refresh (POLL_HEADER): never counted as activity.
        self.background = background
        self.renewed_token: str | None = None
        self.ended = False

    @property
    def authenticated(self) -> bool:
        return self.user_id is not None and not self.ended

    def adopt(self, started: StartedSession) -> None:
        """Switch this request to a session just started by ``start_session`` (login)."""
        super().clear()
        super().update(started.data)
        self.record_id = started.record.id
        self.user_id = started.record.user_id
        self.auth_time = started.record.auth_time
        self.break_glass = started.record.break_glass
        self.renewed_token = started.token
        self.ended = False
        self.modified = False

    def end(self) -> None:
        """Forget this session (its row is deleted by the logout service); drop the cookie."""
        super().clear()
        self.record_id = None
        self.user_id = None
        self.auth_time = None
        self.break_glass = False
        self.renewed_token = None
        self.ended = True
        self.modified = False


class DatabaseSessionInterface(SessionInterface):
    def __init__(self, limits: SessionLimits):
        self.limits = limits
        self._last_purge: dt.datetime | None = None

    # -- reading ------------------------------------------------------------------------------

    def _sessionless(self, app: Flask, request: Request) -> bool:
        try:
            rule, _args = app.create_url_adapter(request).match(return_rule=True)
        except HTTPException:
            return False  # 404/405 pages are rendered like any other page
        endpoint = rule.endpoint
        return endpoint == "static" or endpoint.split(".", 1)[0] in SESSIONLESS_BLUEPRINTS

    def open_session(self, app: Flask, request: Request) -> ServerSession:
        if self._sessionless(app, request):
            return ServerSession(ephemeral=True)
        token = request.cookies.get(self.get_cookie_name(app))
        if not token:
            return ServerSession()
        at = now()
        try:
            with app.extensions["database"].transaction() as db:
                row = db.scalar(select(ConsoleSession)
                                .where(ConsoleSession.token_hash == hash_token(token)))
                if row is None:
                    return ServerSession(had_cookie=True)
                if self.limits.expired(row, at):
                    db.delete(row)
                    return ServerSession(had_cookie=True, expired=row.user_id is not None)
                return ServerSession(
                    load_data(row.data), record_id=row.id, user_id=row.user_id,
                    auth_time=row.auth_time, break_glass=row.break_glass, had_cookie=True,
                    needs_touch=at - row.last_seen_at >= TOUCH_INTERVAL,
                    background=request.headers.get(POLL_HEADER) == "true")
        except SQLAlchemyError:
            # No session store, no sign-in: pages answer 401/503, health and ingress still run.
            log.error("session store unavailable")
            return ServerSession(ephemeral=True)

    # -- writing ------------------------------------------------------------------------------

    def _set_cookie(self, app: Flask, response: Response, token: str) -> None:
        response.set_cookie(
            self.get_cookie_name(app), token, path="/", secure=True, httponly=True,
            samesite="Lax")

    def _delete_cookie(self, app: Flask, response: Response) -> None:
        response.delete_cookie(self.get_cookie_name(app), path="/", secure=True, httponly=True,
                               samesite="Lax")

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if not isinstance(session, ServerSession) or session.ephemeral:
            return
        if session.ended:
            # Only logout ends a session, and its CSRF check needs the cookie: there always is one.
            self._delete_cookie(app, response)
            return
        at = now()
        try:
            if session.record_id is not None:
                self._save_existing(app, session, response, at)
            elif session.modified and len(session):
                self._insert_anonymous(app, session, response, at)
            elif session.had_cookie:
                self._delete_cookie(app, response)
        except SQLAlchemyError:
            log.error("session store unavailable; session not saved")

    def _save_existing(self, app: Flask, session: ServerSession, response: Response,
                       at: dt.datetime) -> None:
        background = session.background
        if session.modified or (not background and (session.needs_touch or session.renewed_token)):
            values: dict[str, Any] = {} if background else {"last_seen_at": at}
            if session.modified:
                values["data"] = dump_data(session)
            with app.extensions["database"].transaction() as db:
                # UPDATE, never INSERT: a session ended meanwhile (logout elsewhere, user
                # disabled) must stay ended, not be resurrected by a slow request.
                updated = db.execute(update(ConsoleSession)
                                     .where(ConsoleSession.id == session.record_id)
                                     .values(**values)).rowcount
                if updated and session.user_id is not None and not background:
                    db.execute(update(User).where(User.id == session.user_id)
                               .values(last_seen_at=at))
            if not updated:
                self._delete_cookie(app, response)
                return
        if session.renewed_token:
            self._set_cookie(app, response, session.renewed_token)

    def _insert_anonymous(self, app: Flask, session: ServerSession, response: Response,
                          at: dt.datetime) -> None:
        token = new_token()
        with app.extensions["database"].transaction() as db:
            self._maybe_purge(db, at)
            db.add(ConsoleSession(
                token_hash=hash_token(token), user_id=None, break_glass=False, created_at=at,
                last_seen_at=at, expires_at=at + self.limits.absolute, auth_time=None,
                data=dump_data(session)))
        self._set_cookie(app, response, token)

    def _maybe_purge(self, db: Session, at: dt.datetime) -> None:
        # Every visitor to the login page gets a row; keep the table to live sessions.
        if self._last_purge is None or at - self._last_purge >= PURGE_INTERVAL:
            self._last_purge = at
            purge_expired(db, at=at, limits=self.limits)
