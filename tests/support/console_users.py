"""Console accounts without a browser session: the console user a shell user maps to when
deciding a four-eyes request (console.four_eyes.check_decider)."""

from __future__ import annotations

from console.auth.models import SSO, User, UserRole
from console.db import utcnow
from console.security.permissions import Role
from tests.support.personas import TEST_ISSUER


def add_console_user(session, username: str, *roles: Role, disabled: bool = False) -> User:
    now = utcnow()
    user = User(kind=SSO, issuer=TEST_ISSUER, subject=f"shell-{username}", username=username,
                display_name=username.title(), email=None, reveal_card_data=False,
                created_at=now, disabled_at=now if disabled else None,
                disabled_by="admin" if disabled else None)
    user.roles = [UserRole(role=role.value) for role in roles]
    session.add(user)
    session.flush()
    return user
