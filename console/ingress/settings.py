"""Ingress and pipeline settings: one frozen object, read from the environment at start.

Webhook secrets are per deployment: a sandbox deployment is configured with FINCI's sandbox
endpoint secret, production with the production one, so a sandbox secret can never verify
production traffic (the production process simply does not hold it). Production additionally
refuses to start without a secret, or with a secret published in documentation (the Standard
Webhooks test vector), since either would let anyone forge deliveries.

Variables (secrets may come from ``NAME_FILE``):

FINCI_WEBHOOK_SECRETS         space-separated ``whsec_…`` (two during rotation)
INGRESS_ALLOW_CIDRS           source allowlist (empty: any source; the signature still applies)
INGRESS_TRUSTED_PROXIES       proxies whose X-Forwarded-For / client-cert header we believe
INGRESS_CLIENT_CERT_HEADER    header the TLS proxy sets with the client certificate's SHA-256
INGRESS_CLIENT_CERT_SHA256    pinned fingerprints (hex, colons allowed); enables the mTLS check
INGRESS_MAX_BODY_BYTES        body cap (default 256 KiB)
INGRESS_RATE_LIMIT_PER_S / INGRESS_RATE_LIMIT_BURST   per source IP, per process
INGRESS_SAFE_DEFAULT          answer when decisioning is missing or fails: error (decline)
INGRESS_REJECTION_RETENTION_DAYS   refused-delivery records are purged after this (default 90)
PIPELINE_MAX_ATTEMPTS, PIPELINE_BACKOFF_BASE_S, PIPELINE_BACKOFF_MAX_S, PIPELINE_BATCH_SIZE,
PIPELINE_LEASE_S, PIPELINE_POLL_INTERVAL_S, PIPELINE_REPLAY_RATE_PER_S,
PIPELINE_REPLAY_MAX_ACTIVE
PIPELINE_HANDLER_MODULES      extra modules that register handlers (development and tests only)
"""

from __future__ import annotations

import base64
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from console.finci import contract
from console.finci.webhook_signature import InvalidWebhookSecret, WebhookSecret
from console.settings import (
    ConfigError,
    Environment,
    Mode,
    Serve,
    _choice,
    _cidrs,
    _float,
    _int,
    _read,
    estimated_entropy_bits,
)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Secrets that appear in public documentation; never acceptable for production traffic.
PUBLISHED_TEST_SECRETS = frozenset({"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})
# 24 random key bytes score about 100 bits by symbol frequency, 32 bytes about 150; an all-zero
# or repeated-byte key scores 0.
WEBHOOK_SECRET_MIN_ENTROPY_BITS = 64

_HEADER_NAME = re.compile(r"[A-Za-z0-9-]{1,64}")
_FINGERPRINT = re.compile(r"[0-9a-f]{64}")
_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


class SafeDefault(StrEnum):
    ERROR = "error"      # decline: what FINCI itself does when we do not answer
    SUCCESS = "success"  # approve: never allowed in production


def normalise_fingerprint(value: str) -> str:
    """``AB:CD:…`` or ``abcd…`` → lower-case hex without separators."""
    return value.strip().replace(":", "").lower()


@dataclass(frozen=True)
class IngressSettings:
    secrets: tuple[WebhookSecret, ...] = ()
    tolerance_s: int = contract.WEBHOOK_TIMESTAMP_TOLERANCE_SECONDS
    allow_cidrs: tuple[Network, ...] = ()
    trusted_proxies: tuple[Network, ...] = ()
    client_cert_header: str = "X-Client-Cert-Sha256"
    # Empty: no mTLS pinning. Otherwise the proxy-reported fingerprint must be one of these.
    client_cert_pins: frozenset[str] = frozenset()
    max_body_bytes: int = contract.WEBHOOK_MAX_BODY_BYTES
    rate_limit_per_s: float = 200.0
    rate_limit_burst: int = 400
    safe_default: SafeDefault = SafeDefault.ERROR
    # Refused deliveries are records of traffic, not of money: kept this long, then purged.
    # 90 days keeps three months at hand (PCI DSS 10.5.1); every refusal is also a log line,
    # which the log store keeps for the year.
    rejection_retention_days: int = 90
    # Pipeline
    max_attempts: int = 8
    backoff_base_s: float = 2.0
    backoff_max_s: float = 900.0
    batch_size: int = 50
    # A claim is owned for this long; a worker killed with -9 loses its claims after it.
    lease_s: float = 60.0
    poll_interval_s: float = 1.0
    replay_rate_per_s: float = 50.0
    replay_max_active: int = 3
    handler_modules: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        for secret in self.secrets:
            if not isinstance(secret, WebhookSecret):
                raise ConfigError("FINCI_WEBHOOK_SECRETS: every secret must be a WebhookSecret")
        for pin in self.client_cert_pins:
            if not _FINGERPRINT.fullmatch(pin):
                raise ConfigError("INGRESS_CLIENT_CERT_SHA256: each pin must be 64 hex digits")

    @property
    def secret_fingerprints(self) -> tuple[str, ...]:
        return tuple(secret.fingerprint for secret in self.secrets)

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, environment: Environment, mode: Mode,
                 serve: Serve) -> IngressSettings:
        secrets = _secrets(env, environment)
        if not secrets and environment is Environment.PRODUCTION and serve is not Serve.CONSOLE:
            raise ConfigError(
                "FINCI_WEBHOOK_SECRETS is required in production (or FINCI_WEBHOOK_SECRETS_FILE):"
                " without it no delivery can be verified")
        header = _read(env, "INGRESS_CLIENT_CERT_HEADER") or cls.client_cert_header
        if not _HEADER_NAME.fullmatch(header):
            raise ConfigError("INGRESS_CLIENT_CERT_HEADER must be a plain header name")
        pins = frozenset(normalise_fingerprint(p) for p in
                         (_read(env, "INGRESS_CLIENT_CERT_SHA256") or "").replace(",", " ").split())
        for pin in pins:
            if not _FINGERPRINT.fullmatch(pin):
                raise ConfigError("INGRESS_CLIENT_CERT_SHA256: each pin must be a SHA-256 "
                                  "fingerprint (64 hex digits, colons allowed)")
        trusted = _cidrs(env, "INGRESS_TRUSTED_PROXIES")
        if pins and not trusted:
            raise ConfigError("INGRESS_CLIENT_CERT_SHA256 needs INGRESS_TRUSTED_PROXIES: the "
                              "fingerprint header is believed only from the TLS proxy")
        safe_default = _choice(env, "INGRESS_SAFE_DEFAULT", SafeDefault, SafeDefault.ERROR)
        if safe_default is SafeDefault.SUCCESS and environment is Environment.PRODUCTION:
            raise ConfigError("INGRESS_SAFE_DEFAULT=success is not allowed in production")
        modules = tuple((_read(env, "PIPELINE_HANDLER_MODULES") or "").replace(",", " ").split())
        for module in modules:
            if not _MODULE.fullmatch(module):
                raise ConfigError(f"PIPELINE_HANDLER_MODULES: {module!r} is not a module name")
        if modules and mode is Mode.LIVE:
            raise ConfigError("PIPELINE_HANDLER_MODULES is for development and tests only")
        backoff_base = _float(env, "PIPELINE_BACKOFF_BASE_S", 2.0, minimum=0.0, maximum=3600)
        return cls(
            secrets=secrets,
            allow_cidrs=_cidrs(env, "INGRESS_ALLOW_CIDRS"),
            trusted_proxies=trusted,
            client_cert_header=header,
            client_cert_pins=pins,
            max_body_bytes=_int(env, "INGRESS_MAX_BODY_BYTES", contract.WEBHOOK_MAX_BODY_BYTES,
                                minimum=1024, maximum=contract.WEBHOOK_MAX_BODY_BYTES),
            rate_limit_per_s=_float(env, "INGRESS_RATE_LIMIT_PER_S", 200.0,
                                    minimum=0.1, maximum=1_000_000),
            rate_limit_burst=_int(env, "INGRESS_RATE_LIMIT_BURST", 400,
                                  minimum=1, maximum=10_000_000),
            safe_default=safe_default,
            rejection_retention_days=_int(env, "INGRESS_REJECTION_RETENTION_DAYS", 90,
                                          minimum=1, maximum=3650),
            max_attempts=_int(env, "PIPELINE_MAX_ATTEMPTS", 8, minimum=1, maximum=100),
            backoff_base_s=backoff_base,
            backoff_max_s=_float(env, "PIPELINE_BACKOFF_MAX_S", 900.0,
                                 minimum=backoff_base, maximum=86_400),
            batch_size=_int(env, "PIPELINE_BATCH_SIZE", 50, minimum=1, maximum=1000),
            lease_s=_float(env, "PIPELINE_LEASE_S", 60.0, minimum=0.5, maximum=3600),
            poll_interval_s=_float(env, "PIPELINE_POLL_INTERVAL_S", 1.0,
                                   minimum=0.01, maximum=60),
            replay_rate_per_s=_float(env, "PIPELINE_REPLAY_RATE_PER_S", 50.0,
                                     minimum=0.1, maximum=10_000),
            replay_max_active=_int(env, "PIPELINE_REPLAY_MAX_ACTIVE", 3, minimum=1, maximum=50),
            handler_modules=modules,
        )


def _secrets(env: Mapping[str, str], environment: Environment) -> tuple[WebhookSecret, ...]:
    raw = _read(env, "FINCI_WEBHOOK_SECRETS", secret=True) or ""
    parsed: list[WebhookSecret] = []
    for position, item in enumerate(raw.split(), start=1):
        if environment is Environment.PRODUCTION and item in PUBLISHED_TEST_SECRETS:
            raise ConfigError(f"FINCI_WEBHOOK_SECRETS: secret #{position} is a published test "
                              "secret and is refused in production")
        try:
            secret = WebhookSecret.parse(item)
        except InvalidWebhookSecret as exc:
            # The message names the position and the problem, never the value.
            raise ConfigError(f"FINCI_WEBHOOK_SECRETS: secret #{position}: {exc}") from None
        if environment is Environment.PRODUCTION and _guessable(item):
            raise ConfigError(f"FINCI_WEBHOOK_SECRETS: secret #{position} is not random (e.g. "
                              "all zero bytes) and is refused in production")
        if secret in parsed:
            raise ConfigError(f"FINCI_WEBHOOK_SECRETS: secret #{position} is listed twice")
        parsed.append(secret)
    if len(parsed) > 4:
        raise ConfigError("FINCI_WEBHOOK_SECRETS: at most 4 active secrets (rotation needs 2)")
    return tuple(parsed)


def _guessable(item: str) -> bool:
    """``item`` parsed as a secret already, so its key part is valid base64."""
    key = base64.b64decode(item[len(contract.WEBHOOK_SECRET_PREFIX):])
    return estimated_entropy_bits(key) < WEBHOOK_SECRET_MIN_ENTROPY_BITS
