"""The rule configuration: what the rules check, with which limits. Versioned in the database.

Admins change it in the console (``Permission.MANAGE_SETTINGS``); every change adds a version
and an audit row with the before/after documents, in the same transaction. Until the first
change, ``DEFAULT`` (version 0) is in force: every rule on, no limits, nothing blocked, and a
generous velocity limit.

Limits are table rows: ``scope`` (card or account), ``period`` (transaction, day, month) and
``currency`` give ``max_amount`` in minor units, optionally for one ``target`` (a card's token id
or an account id), which then overrides the row without a target. Days and months are counted
in ``timezone``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import threading
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from console import request_params
from console.audit import Actor, AuditAction, Target, record
from console.db import utcnow
from console.decisioning.models import RuleConfigVersion


class ConfigInvalid(ValueError):
    """The submitted configuration is not valid; ``problems`` names each field."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


class ConfigConflict(RuntimeError):
    """Someone saved a new version in the meantime."""


class LimitScope(StrEnum):
    CARD = "card"
    ACCOUNT = "account"


class LimitPeriod(StrEnum):
    TRANSACTION = "transaction"
    DAY = "day"
    MONTH = "month"


_CURRENCY = re.compile(r"[A-Z]{3}")
_MCC = re.compile(r"[0-9]{4}")
_COUNTRY = re.compile(r"[A-Z]{2}")
_TARGET = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
MAX_LIMIT_ROWS = 500
MAX_LIST_ITEMS = 1000
MAX_AMOUNT = 2**53  # far above any real limit; keeps JSON numbers exact everywhere


@dataclass(frozen=True)
class LimitRule:
    scope: LimitScope
    period: LimitPeriod
    currency: str
    max_amount: int
    target: str | None = None

    def as_line(self) -> str:
        parts = [self.scope.value, self.period.value, self.currency, str(self.max_amount)]
        return " ".join([*parts, self.target] if self.target else parts)


@dataclass(frozen=True)
class RuleConfig:
    version: int = 0
    balance_enabled: bool = True
    limits_enabled: bool = True
    limits: tuple[LimitRule, ...] = ()
    mcc_enabled: bool = True
    blocked_mccs: frozenset[str] = frozenset()
    country_enabled: bool = True
    blocked_countries: frozenset[str] = frozenset()
    velocity_enabled: bool = True
    # At most this many authorization requests per card within the window (this one included).
    velocity_max: int = 30
    velocity_window_s: int = 60
    timezone: str = "UTC"
    _index: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index: dict[tuple[str, str, str, str | None], int] = {}
        for limit in self.limits:
            index[(limit.scope.value, limit.period.value, limit.currency, limit.target)] = (
                limit.max_amount)
        object.__setattr__(self, "_index", index)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def limit(self, scope: LimitScope, period: LimitPeriod, currency: str,
              target: str | None) -> int | None:
        """The limit in force: the row for this target if there is one, else the general row."""
        if target is not None:
            specific = self._index.get((scope.value, period.value, currency, target))
            if specific is not None:
                return specific
        return self._index.get((scope.value, period.value, currency, None))

    def needs_spend(self, currency: str) -> bool:
        """Whether any day/month limit could apply to ``currency`` (else skip the query)."""
        return self.limits_enabled and any(
            limit.currency == currency and limit.period is not LimitPeriod.TRANSACTION
            for limit in self.limits)

    def windows(self, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        """Start of today and of this month in the configured timezone, as UTC."""
        local = now.astimezone(self.zone)
        day = local.replace(hour=0, minute=0, second=0, microsecond=0)
        month = day.replace(day=1)
        return day.astimezone(dt.UTC), month.astimezone(dt.UTC)

    def as_document(self) -> dict[str, Any]:
        return {
            "balance_enabled": self.balance_enabled,
            "limits_enabled": self.limits_enabled,
            "limits": [{k: (v.value if isinstance(v, StrEnum) else v)
                        for k, v in asdict(limit).items()} for limit in self.limits],
            "mcc_enabled": self.mcc_enabled,
            "blocked_mccs": sorted(self.blocked_mccs),
            "country_enabled": self.country_enabled,
            "blocked_countries": sorted(self.blocked_countries),
            "velocity_enabled": self.velocity_enabled,
            "velocity_max": self.velocity_max,
            "velocity_window_s": self.velocity_window_s,
            "timezone": self.timezone,
        }

    @classmethod
    def from_document(cls, document: dict[str, Any], version: int) -> RuleConfig:
        problems: list[str] = []
        config = _build(document, version, problems)
        if problems:
            raise ConfigInvalid(problems)
        return config


DEFAULT = RuleConfig()


def _flag(document, name, problems) -> bool:
    value = document.get(name, getattr(DEFAULT, name))
    if not isinstance(value, bool):
        problems.append(f"{name}: must be true or false")
        return bool(getattr(DEFAULT, name))
    return value


def _whole(document, name, problems, minimum, maximum) -> int:
    value = document.get(name, getattr(DEFAULT, name))
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        problems.append(f"{name}: must be a whole number from {minimum} to {maximum}")
        return getattr(DEFAULT, name)
    return value


def _codes(document, name, pattern, what, problems) -> frozenset[str]:
    values = document.get(name, [])
    if not isinstance(values, list) or len(values) > MAX_LIST_ITEMS:
        problems.append(f"{name}: must be a list of at most {MAX_LIST_ITEMS} {what}")
        return frozenset()
    bad = [v for v in values if not isinstance(v, str) or not pattern.fullmatch(v)]
    if bad:
        problems.append(f"{name}: {len(bad)} entries are not {what}")
    return frozenset(v for v in values if isinstance(v, str) and pattern.fullmatch(v))


def _limit(raw, position, problems) -> LimitRule | None:
    where = f"limits[{position}]"
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be an object")
        return None
    try:
        scope = LimitScope(raw.get("scope"))
        period = LimitPeriod(raw.get("period"))
    except ValueError:
        problems.append(f"{where}: scope must be card or account; period transaction, day or "
                        "month")
        return None
    currency = raw.get("currency")
    if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
        problems.append(f"{where}: currency must be an ISO 4217 code like EUR")
        return None
    amount = raw.get("max_amount")
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 <= amount <= MAX_AMOUNT:
        problems.append(f"{where}: max_amount must be a whole number of minor units (≥ 0)")
        return None
    target = raw.get("target")
    if target is not None and (not isinstance(target, str) or not _TARGET.fullmatch(target)):
        problems.append(f"{where}: target must be a token id or an account id")
        return None
    return LimitRule(scope, period, currency, amount, target)


def _build(document: dict[str, Any], version: int, problems: list[str]) -> RuleConfig:
    if not isinstance(document, dict):
        problems.append("the configuration must be an object")
        return DEFAULT
    raw_limits = document.get("limits", [])
    limits: list[LimitRule] = []
    if not isinstance(raw_limits, list) or len(raw_limits) > MAX_LIMIT_ROWS:
        problems.append(f"limits: at most {MAX_LIMIT_ROWS} rows")
    else:
        seen = set()
        for position, raw in enumerate(raw_limits):
            limit = _limit(raw, position, problems)
            if limit is None:
                continue
            key = (limit.scope, limit.period, limit.currency, limit.target)
            if key in seen:
                problems.append(
                    f"limits[{position}]: duplicates an earlier row ({limit.as_line()})")
                continue
            seen.add(key)
            limits.append(limit)
    timezone = document.get("timezone", "UTC")
    try:
        if not isinstance(timezone, str) or not timezone:
            raise ZoneInfoNotFoundError(timezone)
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append("timezone: not a known IANA time zone (e.g. UTC, Europe/Berlin)")
        timezone = "UTC"
    return RuleConfig(
        version=version,
        balance_enabled=_flag(document, "balance_enabled", problems),
        limits_enabled=_flag(document, "limits_enabled", problems),
        limits=tuple(limits),
        mcc_enabled=_flag(document, "mcc_enabled", problems),
        blocked_mccs=_codes(document, "blocked_mccs", _MCC, "four-digit MCCs", problems),
        country_enabled=_flag(document, "country_enabled", problems),
        blocked_countries=_codes(document, "blocked_countries", _COUNTRY,
                                 "two-letter country codes", problems),
        velocity_enabled=_flag(document, "velocity_enabled", problems),
        velocity_max=_whole(document, "velocity_max", problems, 1, 100_000),
        velocity_window_s=_whole(document, "velocity_window_s", problems, 1, 86_400),
        timezone=timezone,
    )


# --- the console form -------------------------------------------------------------------------

def _split_codes(text: str) -> list[str]:
    return [item.strip().upper() for item in re.split(r"[\s,;]+", text or "") if item.strip()]


def parse_limit_lines(text: str, problems: list[str]) -> list[dict[str, Any]]:
    """``scope period currency max_amount [target]`` per line, e.g. ``card day EUR 50000``."""
    rows = []
    for number, line in enumerate((text or "").splitlines(), start=1):
        parts = line.split("#", 1)[0].split()
        if not parts:
            continue
        try:
            amount = request_params.integer("amount", parts[3]) if len(parts) in (4, 5) else None
        except request_params.ParameterInvalid:
            amount = None
        if amount is None:
            problems.append(f"limits line {number}: expected 'scope period currency amount "
                            "[target]' (amount in minor units, e.g. 50000)")
            continue
        row: dict[str, Any] = {"scope": parts[0].lower(), "period": parts[1].lower(),
                               "currency": parts[2].upper(), "max_amount": amount}
        if len(parts) == 5:
            row["target"] = parts[4]
        rows.append(row)
    return rows


def document_from_form(form) -> dict[str, Any]:
    """Turn the rule form into a document; raises ``ConfigInvalid`` listing every problem."""
    problems: list[str] = []

    def number(name: str) -> int | None:
        try:
            value = request_params.integer(name, form.get(name), maximum=999_999_999)
        except request_params.ParameterInvalid:
            value = None
        if value is None:
            problems.append(f"{name}: must be a whole number")
        return value

    document = {
        "balance_enabled": form.get("balance_enabled") == "on",
        "limits_enabled": form.get("limits_enabled") == "on",
        "limits": parse_limit_lines(form.get("limits", ""), problems),
        "mcc_enabled": form.get("mcc_enabled") == "on",
        "blocked_mccs": _split_codes(form.get("blocked_mccs", "")),
        "country_enabled": form.get("country_enabled") == "on",
        "blocked_countries": _split_codes(form.get("blocked_countries", "")),
        "velocity_enabled": form.get("velocity_enabled") == "on",
        "velocity_max": number("velocity_max"),
        "velocity_window_s": number("velocity_window_s"),
        "timezone": (form.get("timezone") or "").strip(),
    }
    if problems:
        raise ConfigInvalid(problems)
    return document


# --- storage ----------------------------------------------------------------------------------

_cache_lock = threading.Lock()
_cache: dict[tuple[int, str], RuleConfig] = {}


def digest(document: dict[str, Any]) -> str:
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def active_config(session: Session) -> RuleConfig:
    """The configuration in force: one indexed read; parsed documents are cached per process."""
    head = session.execute(head_version_query()).one_or_none()
    if head is None:
        return DEFAULT
    return config_for(session, head.version, head.digest)


def head_version_query():
    return (select(RuleConfigVersion.version, RuleConfigVersion.digest)
            .order_by(RuleConfigVersion.version.desc()).limit(1))


def config_for(session: Session, version: int | None, digest_: str | None) -> RuleConfig:
    """The parsed configuration of ``version`` (whose digest is ``digest_``), cached."""
    if version is None or digest_ is None:
        return DEFAULT
    key = (version, digest_)
    cached = _cache.get(key)
    if cached is not None:
        return cached
    document = session.scalar(select(RuleConfigVersion.document)
                              .where(RuleConfigVersion.version == version))
    config = RuleConfig.from_document(document, version)
    with _cache_lock:
        if len(_cache) > 64:
            _cache.clear()
        _cache[key] = config
    return config


def history(session: Session, limit: int = 20) -> list[RuleConfigVersion]:
    return list(session.scalars(select(RuleConfigVersion)
                                .order_by(RuleConfigVersion.version.desc()).limit(limit)))


def save_config(session: Session, actor: Actor, document: dict[str, Any], *, reason: str,
                expected_version: int | None = None, now: dt.datetime | None = None
                ) -> RuleConfig:
    """Validate and store a new version, audited with before/after in the same transaction."""
    reason = (reason or "").strip()
    problems = [] if reason else ["reason: say why the rules change"]
    if len(reason) > 500:
        problems.append("reason: at most 500 characters")
    current = active_config(session)
    try:
        config = RuleConfig.from_document(document, current.version + 1)
    except ConfigInvalid as exc:
        problems.extend(exc.problems)
    if problems:
        raise ConfigInvalid(problems)
    if expected_version is not None and expected_version != current.version:
        raise ConfigConflict(f"the rules changed to version {current.version} meanwhile")
    now = now or utcnow()
    document = config.as_document()
    session.add(RuleConfigVersion(version=config.version, document=document,
                                  digest=digest(document), created_at=now, created_by=actor.id,
                                  reason=reason))
    session.flush()  # a concurrent save of the same version fails here (primary key)
    record(session, actor=actor, action=AuditAction.DECISIONING_RULES_UPDATE,
           target=Target("decisioning_rules", str(config.version)), details={"reason": reason},
           before=current.as_document(), after=config.as_document(), at=now)
    return config
