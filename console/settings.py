"""One frozen, validated Settings object, read from the environment.

Secrets may also come from ``NAME_FILE`` (a path whose content is the value), so production can
mount them from a secret store instead of putting them in the process environment. Every problem
is reported at start with the variable's name; values of secrets are never echoed.
"""

from __future__ import annotations

import ipaddress
import math
import os
import secrets as _secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from console.audit.settings import AuditSettings
from console.auth.settings import AuthSettings
from console.checks.settings import ChecksSettings
from console.decisioning.settings import DecisioningSettings
from console.flows.settings import FlowsSettings
from console.monitoring.settings import MetricsSettings
from console.secrets.settings import SecretsSettings
from console.transactions.settings import LifecycleSettings

if TYPE_CHECKING:
    from console.ingress.settings import IngressSettings


def _ingress_settings():
    # Imported late: console.ingress.settings builds on this module's helpers.
    from console.ingress import settings

    return settings


class ConfigError(ValueError):
    """Raised at start when configuration is missing or invalid; the message names the variable."""


class Environment(StrEnum):
    SANDBOX = "sandbox"
    PRODUCTION = "production"


class Mode(StrEnum):
    # ``live`` is every real deployment; ``development`` and ``test`` relax only what a laptop
    # cannot provide (a generated SECRET_KEY, plain-HTTP identity provider on loopback).
    LIVE = "live"
    DEVELOPMENT = "development"
    TEST = "test"


class Serve(StrEnum):
    ALL = "all"
    INGRESS = "ingress"
    CONSOLE = "console"


DEFAULT_DATABASE_URL = "sqlite:///instance/console.sqlite3"


def _without_password(url: str) -> bool:
    """A database URL that carries no password (certificate, peer or IAM authentication)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).password is None
    except ArgumentError:
        return True  # not a URL: the database settings refuse it with their own message


def _read(environ: Mapping[str, str], name: str, *, secret: bool = False,
          plain_allowed: Callable[[str], bool] | None = None) -> str | None:
    """Value of ``name``, or the content of the file named by ``name_FILE`` for secrets. In
    production a secret must come from its file (``plain_allowed`` says which plain values
    hold no secret, e.g. a database URL without a password)."""
    value = environ.get(name)
    file_name = environ.get(f"{name}_FILE") if secret else None
    if value is not None and file_name is not None:
        raise ConfigError(f"{name} and {name}_FILE are both set; set only one")
    if file_name is not None:
        try:
            return Path(file_name).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{name}_FILE: cannot read {file_name!r} ({exc.strerror})") from None
    if (secret and value and environ.get("CONSOLE_ENVIRONMENT", "").strip() == "production"
            and not (plain_allowed and plain_allowed(value))):
        # A plain variable shows up in process listings, crash reports and `env` dumps; the
        # portal requires secrets from an approved store: a mounted file in production.
        raise ConfigError(f"{name}: in production a secret comes from {name}_FILE (a mounted "
                          "secret file), not a plain environment variable")
    return value.strip() if value is not None else None


def _choice(environ, name, enum, default=None):
    raw = _read(environ, name)
    if raw is None or raw == "":
        if default is None:
            allowed = ", ".join(m.value for m in enum)
            raise ConfigError(f"{name} is required (one of: {allowed})")
        return default
    try:
        return enum(raw.lower())
    except ValueError:
        allowed = ", ".join(m.value for m in enum)
        raise ConfigError(f"{name}={raw!r} is not valid (one of: {allowed})") from None


def _int(environ, name, default, *, minimum, maximum):
    raw = _read(environ, name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw, 10)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if not minimum <= value <= maximum:
        raise ConfigError(f"{name}={value} is out of range ({minimum}..{maximum})")
    return value


def _float(environ, name, default, *, minimum, maximum):
    raw = _read(environ, name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if not minimum <= value <= maximum:
        raise ConfigError(f"{name}={value} is out of range ({minimum}..{maximum})")
    return value


def max_form_bytes(environ: Mapping[str, str]) -> int:
    """CONSOLE_MAX_FORM_BYTES: the largest form body the console reads (the server uses it too)."""
    return _int(environ, "CONSOLE_MAX_FORM_BYTES", 1024 * 1024, minimum=1024,
                maximum=16 * 1024 * 1024)


def _bool(environ, name, default):
    raw = _read(environ, name)
    if raw is None or raw == "":
        return default
    lowered = raw.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean (true/false)")


def estimated_entropy_bits(value: str | bytes) -> float:
    """Shannon entropy of ``value``'s own symbol frequencies times its length: a conservative
    guess of how random it is. It cannot prove a value random, but it reliably catches the
    placeholders people type (``aaaa…``, ``x``, an all-zero key)."""
    if not value:
        return 0.0
    counts: dict[object, int] = {}
    for symbol in value:
        counts[symbol] = counts.get(symbol, 0) + 1
    length = len(value)
    per_symbol = -sum(n / length * math.log2(n / length) for n in counts.values())
    return per_symbol * length


# A SECRET_KEY from `secrets.token_urlsafe(48)` scores about 330 bits; a hex key of 32 random
# bytes about 250. Production refuses anything below this.
SECRET_KEY_MIN_ENTROPY_BITS = 128


def _database_url(environ) -> str:
    url = _read(environ, "DATABASE_URL", secret=True,
                plain_allowed=_without_password) or DEFAULT_DATABASE_URL
    scheme = url.split(":", 1)[0]
    if scheme in {"postgres", "postgresql"}:
        # SQLAlchemy wants an explicit driver; psycopg 3 is the one we install.
        url = "postgresql+psycopg:" + url.split(":", 1)[1]
    elif scheme not in {"sqlite", "postgresql+psycopg"}:
        raise ConfigError(
            "DATABASE_URL must be a postgresql:// or sqlite:/// URL "
            f"(got scheme {scheme!r})"
        )
    return url


def _cidrs(environ, name) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    raw = _read(environ, name) or ""
    networks = []
    for item in raw.replace(",", " ").split():
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(f"{name}: {item!r} is not an IP address or CIDR block") from None
    return tuple(networks)


@dataclass(frozen=True)
class Settings:
    environment: Environment
    mode: Mode
    secret_key: str = field(repr=False)
    database_url: str = field(repr=False)
    serve: Serve = Serve.ALL
    # Number of reverse proxies in front of us whose X-Forwarded-* headers are trusted.
    trusted_proxy_count: int = 0
    max_form_bytes: int = 1024 * 1024
    db_connect_timeout_s: int = 1
    db_pool_timeout_s: float = 1.0
    db_pool_size: int = 5
    log_level: str = "INFO"
    # Ask browsers to use HTTPS only; off only for plain-HTTP local development.
    hsts: bool = True
    instance_path: str = "instance"
    # How often a page's live panels refresh themselves (templates/_poll.html); tests shorten it.
    poll_seconds: int = 5
    # SSO, sessions, step-up and break-glass (console.auth.settings); disabled unless configured.
    auth: AuthSettings = field(default_factory=AuthSettings.disabled)
    # Webhook ingress and event pipeline (console.ingress.settings); no secrets unless configured.
    ingress: IngressSettings = field(default_factory=lambda: _ingress_settings().IngressSettings())
    # Authorization decisioning: mode, time budget, fallback answers (console.decisioning.settings).
    decisioning: DecisioningSettings = field(default_factory=DecisioningSettings)
    # Transaction and card lifecycle: ledger kept or not, hold expiry, tolerance, the FINCI Card
    # API (console.transactions.settings).
    lifecycle: LifecycleSettings = field(default_factory=LifecycleSettings)
    # Audit log export: the manifest signing key and the largest export (console.audit.settings).
    audit: AuditSettings = field(default_factory=AuditSettings)
    # Kill switches: which flows need four eyes, how long a request waits (console.flows.settings).
    flows: FlowsSettings = field(default_factory=FlowsSettings)
    # The bearer token for /metrics (console.monitoring.settings); no token, no endpoint.
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    # Where secrets live and how webhook rotation overlaps (console.secrets.settings).
    secrets: SecretsSettings = field(default_factory=SecretsSettings)
    # Health-check thresholds and alert notifiers (console.checks.settings); none by default.
    checks: ChecksSettings = field(default_factory=ChecksSettings)

    @property
    def is_production(self) -> bool:
        return self.environment is Environment.PRODUCTION

    @property
    def relaxed(self) -> bool:
        """True where laptop conveniences are allowed (never in a live deployment)."""
        return self.mode is not Mode.LIVE

    @property
    def database_backend(self) -> str:
        return "sqlite" if self.database_url.startswith("sqlite") else "postgresql"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        environment = _choice(env, "CONSOLE_ENVIRONMENT", Environment)
        mode = _choice(env, "CONSOLE_MODE", Mode, Mode.LIVE)
        if mode is not Mode.LIVE and environment is Environment.PRODUCTION:
            raise ConfigError(
                f"CONSOLE_MODE={mode.value} is not allowed with CONSOLE_ENVIRONMENT=production"
            )
        secret_key = _read(env, "SECRET_KEY", secret=True)
        if not secret_key:
            if mode is Mode.LIVE:
                raise ConfigError(
                    "SECRET_KEY is required (or SECRET_KEY_FILE); generate one with "
                    "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
                )
            secret_key = _secrets.token_urlsafe(48)
        elif len(secret_key) < 32:
            raise ConfigError("SECRET_KEY is too short (at least 32 characters)")
        production = environment is Environment.PRODUCTION
        if production and estimated_entropy_bits(secret_key) < SECRET_KEY_MIN_ENTROPY_BITS:
            raise ConfigError(
                "SECRET_KEY looks guessable (too few distinct characters); production needs a "
                "random key: `python -c 'import secrets; print(secrets.token_urlsafe(48))'`")
        log_level = (_read(env, "LOG_LEVEL") or "INFO").upper()
        if log_level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ConfigError(f"LOG_LEVEL={log_level!r} is not one of DEBUG, INFO, WARNING, ERROR")
        database_url = _database_url(env)
        if production and database_url.startswith("sqlite"):
            raise ConfigError("DATABASE_URL: production requires PostgreSQL, not SQLite")
        serve = _choice(env, "CONSOLE_SERVE", Serve, Serve.ALL)
        trusted_proxy_count = _int(env, "CONSOLE_TRUSTED_PROXY_COUNT", 0, minimum=0, maximum=5)
        hsts = _bool(env, "CONSOLE_HSTS", True)
        if production:
            _refuse_plain_http(env, trusted_proxy_count=trusted_proxy_count, hsts=hsts)
        # Without OIDC a sandbox console still starts (health, ingress, break-glass); see
        # console.auth. Production operators sign in with SSO: only an ingress node needs none.
        auth = AuthSettings.from_env(env, relaxed=mode is not Mode.LIVE, production=production)
        if production and serve is not Serve.INGRESS and not auth.oidc_configured:
            raise ConfigError(
                "OIDC_ISSUER is required in production (with OIDC_CLIENT_ID and "
                "OIDC_CLIENT_SECRET): operators sign in with single sign-on")
        return cls(
            environment=environment,
            mode=mode,
            secret_key=secret_key,
            database_url=database_url,
            serve=serve,
            trusted_proxy_count=trusted_proxy_count,
            max_form_bytes=max_form_bytes(env),
            db_connect_timeout_s=_int(env, "DB_CONNECT_TIMEOUT", 1, minimum=1, maximum=30),
            db_pool_timeout_s=_float(env, "DB_POOL_TIMEOUT", 1.0, minimum=0.1, maximum=30),
            db_pool_size=_int(env, "DB_POOL_SIZE", 5, minimum=1, maximum=100),
            log_level=log_level,
            hsts=hsts,
            instance_path=_read(env, "CONSOLE_INSTANCE_PATH") or "instance",
            poll_seconds=_int(env, "CONSOLE_POLL_SECONDS", 5, minimum=1, maximum=300),
            auth=auth,
            decisioning=DecisioningSettings.from_env(
                env, production=environment is Environment.PRODUCTION),
            lifecycle=LifecycleSettings.from_env(env, relaxed=mode is not Mode.LIVE),
            audit=AuditSettings.from_env(env),
            flows=FlowsSettings.from_env(env),
            metrics=MetricsSettings.from_env(env),
            secrets=SecretsSettings.from_env(env, production=production,
                                             instance_path=_read(env, "CONSOLE_INSTANCE_PATH")
                                             or "instance"),
            checks=ChecksSettings.from_env(env, relaxed=mode is not Mode.LIVE),
            ingress=_ingress_settings().IngressSettings.from_env(
                env, environment=environment, mode=mode, serve=serve),
        )

    def replace(self, **changes) -> Settings:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Settings(**values)


def _refuse_plain_http(env: Mapping[str, str], *, trusted_proxy_count: int, hsts: bool) -> None:
    """Production is reached over HTTPS only: gunicorn terminates TLS itself (TLS_CERT_FILE, read
    by gunicorn.conf.py) or a TLS proxy in front does (CONSOLE_TRUSTED_PROXY_COUNT), and browsers
    are told never to fall back to plain HTTP (HSTS)."""
    if not _read(env, "TLS_CERT_FILE") and trusted_proxy_count == 0:
        raise ConfigError(
            "TLS_CERT_FILE is required in production unless a TLS proxy terminates HTTPS "
            "(then set CONSOLE_TRUSTED_PROXY_COUNT): plain HTTP would carry sessions in clear")
    if not hsts:
        raise ConfigError("CONSOLE_HSTS=false is not allowed in production: browsers must be "
                          "told to use HTTPS only")


def require_https_url(name: str, url: str, settings: Settings) -> str:
    """Validate an outbound URL: HTTPS in live mode; plain HTTP only to loopback when relaxed."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url.rstrip("/")
    loopback = parts.hostname in {"127.0.0.1", "localhost", "::1"}
    if parts.scheme == "http" and settings.relaxed and loopback:
        return url.rstrip("/")
    raise ConfigError(f"{name} must be an https:// URL (got {url!r})")
