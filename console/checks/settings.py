"""Health-check thresholds and notifier settings, read with ``console.settings``' rules (every
problem named at start, ``NAME_FILE`` for secrets, secret values never echoed).

Alerting: ``CHECKS_FAILURES_BEFORE_ALERT`` (3) consecutive failures raise an alert;
``CHECKS_REPEAT_MINUTES`` (60; 0 = never) repeats it while still failing.
Notifiers (both optional, both may be set): ``CHECKS_WEBHOOK_URL`` (secret: Slack URLs carry a
token) with ``CHECKS_WEBHOOK_FORMAT`` = generic | slack | pagerduty (pagerduty also needs
``CHECKS_PAGERDUTY_ROUTING_KEY``); ``CHECKS_SMTP_HOST`` with ``CHECKS_SMTP_PORT`` (25),
``CHECKS_SMTP_STARTTLS`` (true), ``CHECKS_SMTP_USERNAME`` / ``CHECKS_SMTP_PASSWORD``,
``CHECKS_EMAIL_FROM`` and ``CHECKS_EMAIL_TO`` (comma-separated).
Webhook silence: ``CHECKS_WEBHOOK_SILENCE_MINUTES`` is a default and optional hour ranges, e.g.
``15,0-6=120,22-23=60`` (15 minutes, but two hours at night, UTC hours).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

_ADDRESS = re.compile(r"[^@\s,<>]+@[^@\s,<>]+\.[^@\s,<>]+")
_HOST = re.compile(r"[A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\]")


class WebhookFormat(StrEnum):
    GENERIC = "generic"
    SLACK = "slack"
    PAGERDUTY = "pagerduty"


@dataclass(frozen=True)
class WebhookTarget:
    url: str = field(repr=False)
    format: WebhookFormat = WebhookFormat.GENERIC
    routing_key: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    sender: str
    recipients: tuple[str, ...]
    starttls: bool = True
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout_s: float = 10.0


@dataclass(frozen=True)
class SilenceWindow:
    """Minutes without deliveries before the webhook-silence check fails, by UTC hour."""

    default_minutes: int = 15
    by_hour: tuple[tuple[int, int, int], ...] = ()  # (first hour, last hour, minutes)

    def minutes_at(self, hour: int) -> int:
        for first, last, minutes in self.by_hour:
            if first <= hour <= last:
                return minutes
        return self.default_minutes


@dataclass(frozen=True)
class ChecksSettings:
    failures_before_alert: int = 3
    repeat_minutes: int = 60
    silence: SilenceWindow = field(default_factory=SilenceWindow)
    backlog_age_s: int = 300
    dead_letters_max: int = 0
    timeout_rate_percent: float = 1.0
    decision_p99_ms: float = 1500.0
    duplicate_spike: int = 100  # duplicate deliveries in the last 15 minutes
    posting_failures_max: int = 0
    card_update_failures_max: int = 0
    credential_expiry_days: int = 14
    clock_skew_s: int = 60
    webhook: WebhookTarget | None = None
    smtp: SmtpTarget | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, relaxed: bool) -> ChecksSettings:
        from console.settings import _bool, _float, _int

        return cls(
            failures_before_alert=_int(env, "CHECKS_FAILURES_BEFORE_ALERT", 3, minimum=1,
                                       maximum=100),
            repeat_minutes=_int(env, "CHECKS_REPEAT_MINUTES", 60, minimum=0, maximum=10080),
            silence=_silence(env),
            backlog_age_s=_int(env, "CHECKS_BACKLOG_AGE_SECONDS", 300, minimum=1,
                               maximum=86400),
            dead_letters_max=_int(env, "CHECKS_DEAD_LETTERS_MAX", 0, minimum=0,
                                  maximum=1_000_000),
            timeout_rate_percent=_float(env, "CHECKS_TIMEOUT_RATE_PERCENT", 1.0, minimum=0,
                                        maximum=100),
            decision_p99_ms=_float(env, "CHECKS_DECISION_P99_MS", 1500.0, minimum=1,
                                   maximum=60000),
            duplicate_spike=_int(env, "CHECKS_DUPLICATE_SPIKE", 100, minimum=1,
                                 maximum=1_000_000),
            posting_failures_max=_int(env, "CHECKS_POSTING_FAILURES_MAX", 0, minimum=0,
                                      maximum=1_000_000),
            card_update_failures_max=_int(env, "CHECKS_CARD_UPDATE_FAILURES_MAX", 0, minimum=0,
                                          maximum=1_000_000),
            credential_expiry_days=_int(env, "CHECKS_CREDENTIAL_EXPIRY_DAYS", 14, minimum=1,
                                        maximum=365),
            clock_skew_s=_int(env, "CHECKS_CLOCK_SKEW_SECONDS", 60, minimum=1, maximum=3600),
            webhook=_webhook(env, relaxed=relaxed),
            smtp=_smtp(env, starttls=_bool(env, "CHECKS_SMTP_STARTTLS", True)),
        )


def _silence(env: Mapping[str, str]) -> SilenceWindow:
    from console.settings import ConfigError, _read

    name = "CHECKS_WEBHOOK_SILENCE_MINUTES"
    raw = _read(env, name) or ""
    default, ranges = 15, []
    for item in raw.replace(" ", "").split(","):
        if not item:
            continue
        match = re.fullmatch(r"(?:(\d{1,2})(?:-(\d{1,2}))?=)?(\d{1,5})", item)
        if match is None:
            raise ConfigError(f"{name}: {item!r} is neither minutes (15) nor hours=minutes "
                              "(0-6=120)")
        first, last, minutes = match.groups()
        if not 1 <= int(minutes) <= 10080:
            raise ConfigError(f"{name}: {minutes} minutes is out of range (1..10080)")
        if first is None:
            default = int(minutes)
            continue
        low, high = int(first), int(last if last is not None else first)
        if not 0 <= low <= high <= 23:
            raise ConfigError(f"{name}: hours {item.split('=')[0]!r} must be 0..23, low-high")
        ranges.append((low, high, int(minutes)))
    return SilenceWindow(default, tuple(ranges))


def _webhook(env: Mapping[str, str], *, relaxed: bool) -> WebhookTarget | None:
    from console.settings import ConfigError, _choice, _read

    url = _read(env, "CHECKS_WEBHOOK_URL", secret=True)
    if not url:
        return None
    # Validated without echoing the URL: a Slack or PagerDuty URL is itself a credential.
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    loopback = parts.hostname in {"127.0.0.1", "localhost", "::1"}
    if not parts.hostname or not (parts.scheme == "https" or (
            parts.scheme == "http" and relaxed and loopback)):
        raise ConfigError("CHECKS_WEBHOOK_URL must be an https:// URL (plain http only to "
                          "loopback outside live mode)")
    kind = _choice(env, "CHECKS_WEBHOOK_FORMAT", WebhookFormat, WebhookFormat.GENERIC)
    routing_key = _read(env, "CHECKS_PAGERDUTY_ROUTING_KEY", secret=True) or None
    if kind is WebhookFormat.PAGERDUTY and not routing_key:
        raise ConfigError("CHECKS_PAGERDUTY_ROUTING_KEY is required with "
                          "CHECKS_WEBHOOK_FORMAT=pagerduty")
    return WebhookTarget(url, kind, routing_key)


def _smtp(env: Mapping[str, str], *, starttls: bool) -> SmtpTarget | None:
    from console.settings import ConfigError, _int, _read

    host = _read(env, "CHECKS_SMTP_HOST")
    if not host:
        return None
    if not _HOST.fullmatch(host):
        raise ConfigError(f"CHECKS_SMTP_HOST={host!r} is not a host name or address")
    sender = _read(env, "CHECKS_EMAIL_FROM") or ""
    if not _ADDRESS.fullmatch(sender):
        raise ConfigError("CHECKS_EMAIL_FROM must be one email address when CHECKS_SMTP_HOST "
                          "is set")
    recipients = tuple(r for r in (_read(env, "CHECKS_EMAIL_TO") or "").replace(" ", "")
                       .split(",") if r)
    if not recipients:
        raise ConfigError("CHECKS_EMAIL_TO is required when CHECKS_SMTP_HOST is set "
                          "(comma-separated addresses)")
    for address in recipients:
        if not _ADDRESS.fullmatch(address):
            raise ConfigError(f"CHECKS_EMAIL_TO: {address!r} is not an email address")
    username = _read(env, "CHECKS_SMTP_USERNAME") or None
    password = _read(env, "CHECKS_SMTP_PASSWORD", secret=True) or None
    if (username is None) != (password is None):
        raise ConfigError("CHECKS_SMTP_USERNAME and CHECKS_SMTP_PASSWORD go together")
    if password is not None and not starttls:
        raise ConfigError("CHECKS_SMTP_PASSWORD needs CHECKS_SMTP_STARTTLS=true: the password "
                          "would cross the network in clear")
    return SmtpTarget(host, _int(env, "CHECKS_SMTP_PORT", 25, minimum=1, maximum=65535),
                      sender, recipients, starttls, username, password)
