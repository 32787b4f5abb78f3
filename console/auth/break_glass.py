"""Break-glass: local accounts for when the identity provider is down.

Off unless ``BREAK_GLASS_ENABLED``. Each sign-in needs the argon2-hashed password *and* a TOTP
code (each code once); 10 consecutive failures lock the account for 30 minutes. Every attempt is
audited, sessions are flagged (actor type ``break_glass``, a banner on every page) and never
grant card-data reveal.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hmac
import os
import re
from dataclasses import dataclass

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from console.audit import Actor, AuditAction, Outcome, Target, record
from console.auth.models import (
    BREAK_GLASS,
    BREAK_GLASS_ISSUER,
    BreakGlassAccount,
    LoginAttempt,
    User,
    UserRole,
)
from console.auth.services import Identity, LoginRefused, login, user_target
from console.auth.sessions import SessionLimits, StartedSession
from console.security.permissions import Role

MAX_FAILURES = 10
LOCKOUT = dt.timedelta(minutes=30)
# Failures from one address (any account names) before that address is refused for LOCKOUT.
MAX_SOURCE_FAILURES = 20
MIN_PASSWORD_LENGTH = 16
USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{2,39}$")
TOTP_ISSUER = "FINCI console break-glass"
_TOTP_VERSION = "v1"

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    # Verified when the username is unknown, so a missing account costs the same time as a
    # wrong password and does not reveal which accounts exist. Made on first use, not at import.
    return _hasher.hash(os.urandom(16).hex())


@functools.cache
def _dummy_sealed_totp(secret_key: str) -> str:
    # Opened and checked for unknown names, like a real account's TOTP secret.
    return seal_totp_secret(pyotp.random_base32(), secret_key)


class BreakGlassError(ValueError):
    """The account cannot be created or changed as asked."""


def _cipher(secret_key: str) -> AESGCM:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
               info=b"finci-console break-glass totp v1").derive(secret_key.encode())
    return AESGCM(key)


def seal_totp_secret(secret: str, secret_key: str) -> str:
    nonce = os.urandom(12)
    sealed = _cipher(secret_key).encrypt(nonce, secret.encode(), b"break-glass-totp")
    return f"{_TOTP_VERSION}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"


def open_totp_secret(sealed: str, secret_key: str) -> str:
    version, _, payload = sealed.partition(":")
    if version != _TOTP_VERSION:
        raise BreakGlassError("unknown TOTP secret format")
    raw = base64.urlsafe_b64decode(payload.encode())
    try:
        return _cipher(secret_key).decrypt(raw[:12], raw[12:], b"break-glass-totp").decode()
    except InvalidTag:
        raise BreakGlassError("TOTP secret does not open with this SECRET_KEY") from None


def _username(name: str) -> str:
    return f"break-glass:{name}"


@dataclass(frozen=True)
class CreatedAccount:
    user: User
    provisioning_uri: str  # shown once to the operator enrolling the authenticator


def create_account(db: Session, name: str, password: str, roles: list[Role], *, actor: Actor,
                   secret_key: str, at: dt.datetime) -> CreatedAccount:
    if not USERNAME_PATTERN.match(name):
        raise BreakGlassError("name must be 3-40 characters: lowercase letters, digits, . _ -")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise BreakGlassError(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    if not roles:
        raise BreakGlassError("give the account at least one role")
    exists = db.scalar(select(User.id).where(User.issuer == BREAK_GLASS_ISSUER,
                                             User.subject == name))
    if exists is not None:
        raise BreakGlassError(f"break-glass account {name!r} already exists")
    user = User(kind=BREAK_GLASS, issuer=BREAK_GLASS_ISSUER, subject=name,
                username=_username(name), display_name=f"Break-glass {name}", email=None,
                reveal_card_data=False, created_at=at)
    user.roles = [UserRole(role=role.value) for role in sorted(set(roles))]
    secret = pyotp.random_base32()
    db.add(user)
    db.flush()
    db.add(BreakGlassAccount(user_id=user.id, password_hash=_hasher.hash(password),
                             totp_secret_encrypted=seal_totp_secret(secret, secret_key),
                             failed_attempts=0, created_at=at))
    db.flush()
    record(db, actor=actor, action=AuditAction.AUTH_BREAK_GLASS_CREATE, target=user_target(user),
           after={"roles": user.role_names})
    uri = pyotp.TOTP(secret).provisioning_uri(name=name, issuer_name=TOTP_ISSUER)
    return CreatedAccount(user=user, provisioning_uri=uri)


def _account(db: Session, name: str) -> BreakGlassAccount | None:
    # Row lock: concurrent wrong guesses must each count (PostgreSQL; SQLite serialises writers).
    return db.scalar(select(BreakGlassAccount).join(User)
                     .where(User.issuer == BREAK_GLASS_ISSUER, User.subject == name)
                     .with_for_update(of=BreakGlassAccount))


def _totp_step(secret: str, code: str, at: dt.datetime, last_step: int | None) -> int | None:
    """The accepted time step, or None. One step of drift either way; no step used twice."""
    totp = pyotp.TOTP(secret)
    code = code.strip().replace(" ", "")
    if not code.isdigit() or len(code) != totp.digits:
        return None
    current = totp.timecode(at)
    for step in (current - 1, current, current + 1):
        if last_step is not None and step <= last_step:
            continue
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def unlock(db: Session, name: str, *, actor: Actor) -> bool:
    account = _account(db, name)
    if account is None:
        return False
    account.failed_attempts = 0
    account.locked_until = None
    db.flush()
    record(db, actor=actor, action=AuditAction.AUTH_BREAK_GLASS_UNLOCK,
           target=user_target(account.user))
    return True


def sign_in(db: Session, name: str, password: str, code: str, *, origin: Actor,
            at: dt.datetime, limits: SessionLimits, secret_key: str,
            replaces: int | None = None) -> tuple[User, StartedSession]:
    """Check password and TOTP, count failures, lock after ``MAX_FAILURES``; start a session.

    Raises LoginRefused (with the reason audited). The caller must keep the transaction on
    error (``keep_on_error``): failure counts and audit rows are the point.
    """
    target = Target("user", _username(name[:40]))

    def attempt(succeeded: bool, reason: str | None = None) -> None:
        db.add(LoginAttempt(occurred_at=at, username=name[:200], source_ip=origin.source_ip,
                            succeeded=succeeded, reason=reason))
        db.flush()

    def refuse(reason: str) -> LoginRefused:
        attempt(False, reason)
        record(db, actor=origin, action=AuditAction.AUTH_BREAK_GLASS_LOGIN,
               outcome=Outcome.FAILURE if reason != "disabled" else Outcome.DENIED,
               target=target, details={"reason": reason})
        return LoginRefused(reason, "Sign-in failed.")

    if _source_failures(db, origin.source_ip, at) >= MAX_SOURCE_FAILURES:
        # Checked before anything else, so the answer says nothing about the account.
        raise refuse("source_throttled")
    account = _account(db, name[:40])
    # From here every name takes the same steps: one argon2 verification, one TOTP check and
    # one failure counted towards a lockout, whether the account exists, is locked, disabled or
    # not there at all, so neither the answer nor its timing tells which accounts exist.
    if account is None:
        password_hash, sealed, last_step = _dummy_hash(), _dummy_sealed_totp(secret_key), None
        earlier_failures = _name_failures(db, name[:200], at)
        locked = earlier_failures >= MAX_FAILURES
    else:
        password_hash, sealed = account.password_hash, account.totp_secret_encrypted
        last_step, earlier_failures = account.last_totp_step, account.failed_attempts
        locked = account.locked_until is not None and at < account.locked_until
    password_ok = _verify_password(password_hash, password)
    step = _totp_step(open_totp_secret(sealed, secret_key), code, at, last_step)
    if locked:
        raise refuse("locked")
    if account is None:
        reason = "unknown_account"
    elif account.user.disabled:
        raise refuse("disabled")
    else:
        reason = "bad_password" if not password_ok else "bad_totp"
    if account is None or not password_ok or step is None:
        failures = earlier_failures + 1
        if account is not None:
            account.failed_attempts = failures
        if failures >= MAX_FAILURES:
            locked_until = at + LOCKOUT
            if account is not None:
                account.failed_attempts = 0
                account.locked_until = locked_until
            db.flush()
            error = refuse(reason)
            record(db, actor=origin, action=AuditAction.AUTH_BREAK_GLASS_LOCK, target=target,
                   outcome=Outcome.DENIED,
                   details={"failures": MAX_FAILURES, "locked_until": locked_until.isoformat()})
            raise error
        db.flush()
        raise refuse(reason)
    account.failed_attempts = 0
    account.locked_until = None
    account.last_totp_step = step
    if _hasher.check_needs_rehash(account.password_hash):
        account.password_hash = _hasher.hash(password)
    attempt(True)
    user = account.user
    identity = Identity(issuer=BREAK_GLASS_ISSUER, subject=user.subject, username=user.username,
                        display_name=user.display_name, email=None,
                        roles=frozenset(Role(r) for r in user.role_names), auth_time=at,
                        kind=BREAK_GLASS)
    return login(db, identity, origin=origin, at=at, limits=limits, replaces=replaces,
                 break_glass=True)


def _source_failures(db: Session, source_ip: str | None, at: dt.datetime) -> int:
    if source_ip is None:
        return 0
    return db.scalar(select(func.count(LoginAttempt.id)).where(
        LoginAttempt.source_ip == source_ip, LoginAttempt.succeeded.is_(False),
        LoginAttempt.reason != "source_throttled",
        LoginAttempt.occurred_at > at - LOCKOUT)) or 0


def _name_failures(db: Session, username: str, at: dt.datetime) -> int:
    """Failures for a name without an account, counted like an account's: the same lockout
    bookkeeping for every name, so a lockout cannot reveal that an account exists."""
    return db.scalar(select(func.count(LoginAttempt.id)).where(
        LoginAttempt.username == username, LoginAttempt.succeeded.is_(False),
        LoginAttempt.reason.not_in(("source_throttled", "locked")),
        LoginAttempt.occurred_at > at - LOCKOUT)) or 0


def purge_attempts(db: Session, *, before: dt.datetime) -> int:
    return db.execute(delete(LoginAttempt).where(LoginAttempt.occurred_at < before)).rowcount or 0


def _verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False

