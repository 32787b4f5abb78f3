"""Identity and access settings: the OIDC client, group → role mapping, session lifetimes,
step-up freshness and break-glass, read from the environment with the same rules as
``console.settings`` (``NAME_FILE`` for secrets, every problem named at start)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from console.security.permissions import Role

# console.settings imports this module (for its ``auth`` field), so its helpers are imported
# where they are used, once console.settings has finished loading.

DEFAULT_GROUP_ROLES = (
    "console-viewers=viewer,console-operators=operator,console-oncall=oncall,"
    "console-compliance=compliance,console-admins=admin"
)
DEFAULT_SCOPES = ("openid", "email", "profile", "groups")


class SensitiveAction(StrEnum):
    """Actions that can require step-up (a fresh sign-in): ``STEP_UP_ACTIONS`` names them."""

    KILL_SWITCHES = "kill_switches"
    RULES = "rules"
    CARD_STATUS = "card_status"
    USERS = "users"
    AUDIT_EXPORT = "audit_export"
    REPLAYS = "replays"
    KEYS = "keys"


def _sensitive_actions(raw: str | None) -> frozenset[SensitiveAction] | None:
    from console.settings import ConfigError

    if raw is None or not raw.strip():
        return None  # the default: every action in production, none in the sandbox
    items = raw.replace(",", " ").lower().split()
    if items == ["all"]:
        return frozenset(SensitiveAction)
    if items == ["none"]:
        return frozenset()
    try:
        return frozenset(SensitiveAction(item) for item in items)
    except ValueError:
        allowed = ", ".join(a.value for a in SensitiveAction)
        raise ConfigError(f"STEP_UP_ACTIONS: one of all, none, or a list of: {allowed}") from None
# An identity provider's generated client secret (32+ random characters) scores well above this;
# a placeholder such as ``x`` or ``secret`` does not.
CLIENT_SECRET_MIN_ENTROPY_BITS = 64


def _group_roles(raw: str) -> tuple[tuple[str, Role], ...]:
    from console.settings import ConfigError

    pairs: list[tuple[str, Role]] = []
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        group, sep, role = item.rpartition("=")
        if not sep or not group.strip():
            raise ConfigError(f"OIDC_GROUP_ROLES: {item!r} is not GROUP=ROLE")
        try:
            pairs.append((group.strip(), Role(role.strip().lower())))
        except ValueError:
            allowed = ", ".join(r.value for r in Role)
            raise ConfigError(
                f"OIDC_GROUP_ROLES: {role.strip()!r} is not a role (one of: {allowed})"
            ) from None
    return tuple(pairs)


@dataclass(frozen=True)
class AuthSettings:
    issuer: str | None = None
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    # Claim carrying the user's groups; a dotted path reaches nested claims
    # (e.g. ``realm_access.roles``).
    role_claim: str = "groups"
    group_roles: tuple[tuple[str, Role], ...] = (
        ("console-viewers", Role.VIEWER), ("console-operators", Role.OPERATOR),
        ("console-oncall", Role.ONCALL), ("console-compliance", Role.COMPLIANCE),
        ("console-admins", Role.ADMIN),
    )
    # Members of this IdP group may reveal card data (no role grants it; empty = nobody).
    reveal_group: str | None = None
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    break_glass_enabled: bool = False
    session_idle_minutes: int = 15
    session_absolute_hours: int = 12
    step_up_max_age_seconds: int = 300
    # None: every sensitive action in production, none in the sandbox (console.auth.step_up).
    step_up_actions: frozenset[SensitiveAction] | None = None
    # Loopback plain-HTTP issuers are accepted (laptops, tests); never in live mode.
    allow_http_issuer: bool = False
    http_timeout_s: float = 5.0

    @classmethod
    def disabled(cls) -> AuthSettings:
        """No SSO configured: health and ingress run; the login page says so."""
        return cls()

    @property
    def oidc_configured(self) -> bool:
        return bool(self.issuer and self.client_id and self.client_secret)

    def roles_for_groups(self, groups) -> frozenset[Role]:
        mapping: dict[str, set[Role]] = {}
        for group, role in self.group_roles:
            mapping.setdefault(group, set()).add(role)
        roles: set[Role] = set()
        for group in groups:
            roles |= mapping.get(group, set())
        return frozenset(roles)

    @classmethod
    def from_env(cls, environ: Mapping[str, str], *, relaxed: bool,
                 production: bool = False) -> AuthSettings:
        from console.settings import (
            ConfigError,
            _bool,
            _int,
            _read,
            estimated_entropy_bits,
            require_https_url,
        )

        issuer = _read(environ, "OIDC_ISSUER") or None
        client_id = _read(environ, "OIDC_CLIENT_ID") or None
        client_secret = _read(environ, "OIDC_CLIENT_SECRET", secret=True) or None
        given = {"OIDC_ISSUER": issuer, "OIDC_CLIENT_ID": client_id,
                 "OIDC_CLIENT_SECRET": client_secret}
        if any(given.values()) and not all(given.values()):
            missing = ", ".join(name for name, value in given.items() if not value)
            raise ConfigError(f"OIDC is partly configured: {missing} missing")
        if (production and client_secret
                and estimated_entropy_bits(client_secret) < CLIENT_SECRET_MIN_ENTROPY_BITS):
            raise ConfigError("OIDC_CLIENT_SECRET looks like a placeholder, not the identity "
                              "provider's generated secret; refused in production")
        if issuer:
            issuer = require_https_url("OIDC_ISSUER", issuer, _Relaxed(relaxed))
        scopes = tuple((_read(environ, "OIDC_SCOPES") or " ".join(DEFAULT_SCOPES))
                       .replace(",", " ").split())
        if "openid" not in scopes:
            raise ConfigError("OIDC_SCOPES must include openid")
        role_claim = _read(environ, "OIDC_ROLE_CLAIM") or "groups"
        group_roles = _group_roles(_read(environ, "OIDC_GROUP_ROLES") or DEFAULT_GROUP_ROLES)
        if not group_roles:
            raise ConfigError("OIDC_GROUP_ROLES maps no group to a role")
        return cls(
            issuer=issuer,
            client_id=client_id,
            client_secret=client_secret,
            role_claim=role_claim,
            group_roles=group_roles,
            reveal_group=_read(environ, "OIDC_REVEAL_CARD_DATA_GROUP") or None,
            scopes=scopes,
            break_glass_enabled=_bool(environ, "BREAK_GLASS_ENABLED", False),
            session_idle_minutes=_int(environ, "SESSION_IDLE_MINUTES", 15,
                                      minimum=1, maximum=60),
            session_absolute_hours=_int(environ, "SESSION_ABSOLUTE_HOURS", 12,
                                        minimum=1, maximum=24),
            step_up_max_age_seconds=_int(environ, "STEP_UP_MAX_AGE_SECONDS", 300,
                                         minimum=30, maximum=900),
            step_up_actions=_sensitive_actions(_read(environ, "STEP_UP_ACTIONS")),
            allow_http_issuer=relaxed,
        )


@dataclass(frozen=True)
class _Relaxed:
    """The one attribute ``require_https_url`` reads from Settings."""

    relaxed: bool
