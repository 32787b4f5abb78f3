"""Who may sign in (users and their roles), their server-side sessions and break-glass accounts."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from console.db import Base
from console.security.permissions import Role

_ROLE_LIST = ", ".join(f"'{role.value}'" for role in Role)

SSO = "sso"
BREAK_GLASS = "break_glass"
# Issuer recorded for local break-glass accounts (they have no identity provider).
BREAK_GLASS_ISSUER = "break-glass"


class User(Base):
    """A person who has signed in (SSO) or a local break-glass account."""

    __tablename__ = "console_user"
    __table_args__ = (
        UniqueConstraint("issuer", "subject"),
        CheckConstraint(f"kind IN ('{SSO}', '{BREAK_GLASS}')", name="kind_known"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    issuer: Mapped[str] = mapped_column(String(255))
    # The IdP's stable identifier (``sub``); names and e-mails may change, this does not.
    subject: Mapped[str] = mapped_column(String(255))
    # Unique, readable, stable: the audit log's actor id for this user.
    username: Mapped[str] = mapped_column(String(200), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    # Granted by membership of OIDC_REVEAL_CARD_DATA_GROUP at the last login, never by a role.
    reveal_card_data: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime]
    last_login_at: Mapped[dt.datetime | None]
    last_seen_at: Mapped[dt.datetime | None]
    disabled_at: Mapped[dt.datetime | None]
    disabled_by: Mapped[str | None] = mapped_column(String(200))

    roles: Mapped[list[UserRole]] = relationship(
        back_populates="user", cascade="all, delete-orphan", lazy="selectin",
        order_by="UserRole.role")

    @property
    def role_names(self) -> list[str]:
        return sorted(r.role for r in self.roles)

    @property
    def disabled(self) -> bool:
        return self.disabled_at is not None

    # flask-login's user protocol.
    is_authenticated = True
    is_anonymous = False

    @property
    def is_active(self) -> bool:
        return not self.disabled

    def get_id(self) -> str:
        return str(self.id)


class UserRole(Base):
    """One console role held by a user (from IdP groups at login, or given to a break-glass
    account when it is created)."""

    __tablename__ = "console_user_role"
    __table_args__ = (CheckConstraint(f"role IN ({_ROLE_LIST})", name="role_known"),)

    user_id: Mapped[int] = mapped_column(
        ForeignKey("console_user.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(String(20), primary_key=True)

    user: Mapped[User] = relationship(back_populates="roles")


class ConsoleSession(Base):
    """A browser session. The cookie holds a random token; only its SHA-256 is stored, so a
    database read does not hand out live sessions. Deleting the row ends the session."""

    __tablename__ = "console_session"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # None while anonymous (a session can hold a CSRF token and a pending login before sign-in).
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("console_user.id", ondelete="CASCADE"), index=True)
    break_glass: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime]
    # Idle timeout is measured from here (updated at most once a minute).
    last_seen_at: Mapped[dt.datetime] = mapped_column(index=True)
    # Absolute end of the session, whatever the activity.
    expires_at: Mapped[dt.datetime]
    # When the user last proved who they are (IdP auth_time, or break-glass login): step-up.
    auth_time: Mapped[dt.datetime | None]
    # Flask session contents (tagged JSON): CSRF token, pending logins, flashes.
    data: Mapped[str] = mapped_column(Text, default="{}")


class BreakGlassAccount(Base):
    """Local credentials for when the identity provider is down: argon2 password plus TOTP."""

    __tablename__ = "break_glass_account"
    __table_args__ = (CheckConstraint("failed_attempts >= 0", name="failed_attempts_positive"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("console_user.id", ondelete="CASCADE"), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    # AES-GCM under a key derived from SECRET_KEY: TOTP needs the secret back, so it cannot be
    # hashed; rotating SECRET_KEY means re-enrolling break-glass accounts.
    totp_secret_encrypted: Mapped[str] = mapped_column(String(255))
    # Consecutive failures since the last success or lockout.
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None]
    # The last accepted TOTP time step: a code is good for one login only.
    last_totp_step: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    created_at: Mapped[dt.datetime]

    user: Mapped[User] = relationship()


class LoginAttempt(Base):
    """One break-glass sign-in attempt. Counts failures per source address (the per-account
    count lives on the account), so one address cannot spray guesses at many account names,
    each costing an argon2 verification."""

    __tablename__ = "login_attempt"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    occurred_at: Mapped[dt.datetime] = mapped_column(index=True)
    # The name that was tried (it may not exist).
    username: Mapped[str] = mapped_column(String(200))
    source_ip: Mapped[str | None] = mapped_column(String(45), index=True)
    succeeded: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str | None] = mapped_column(String(40))


class AnonymousDenial(Base):
    """Refused requests without a session (API calls and writes), counted: one row per (minute,
    source address, permission, status), like ``console.ingress.models.WebhookRejection``.

    A flood must not become an audit row per request, yet every denial is audited: the
    ``auth.anonymous_denials`` job writes one audit row for all counts added since its last run
    (``count - audited_count`` per row) and moves ``audited_count`` up. ``pending`` marks rows
    with counts not yet audited (indexed, so the job never scans the whole table).
    ``method`` and ``path`` are one sample (the first), the path masked.
    """

    __tablename__ = "anonymous_denial"
    __table_args__ = (
        UniqueConstraint("minute", "source_ip", "permission", "status"),
        CheckConstraint("count > 0", name="count_positive"),
        CheckConstraint("audited_count >= 0 AND audited_count <= count",
                        name="audited_within_count"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    minute: Mapped[dt.datetime]
    # "" when unknown: a key column cannot be NULL (NULLs never conflict, never aggregate).
    source_ip: Mapped[str] = mapped_column(String(45))
    permission: Mapped[str] = mapped_column(String(40))
    status: Mapped[int] = mapped_column(Integer)
    count: Mapped[int] = mapped_column(Integer, default=1)
    audited_count: Mapped[int] = mapped_column(Integer, default=0)
    pending: Mapped[bool] = mapped_column(Boolean, index=True)
    first_seen_at: Mapped[dt.datetime]
    last_seen_at: Mapped[dt.datetime]
    method: Mapped[str | None] = mapped_column(String(10))
    path: Mapped[str | None] = mapped_column(String(300))
