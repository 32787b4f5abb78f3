"""Transaction lifecycle and card lifecycle settings: the program setup and the Card API.

Variables (secrets may also come from ``NAME_FILE``):

KEEPS_LEDGER                 ``true`` (default): the integrator keeps its own ledger, so holds are
                             converted, released and presentments and refunds posted. ``false``:
                             FINCI keeps the balances; transactions and timelines still work and
                             no posting is created.
HOLD_EXPIRY_DAYS             an approved authorization with no presentment after this many days
                             expires and its hold is released (default 7)
PRESENTMENT_TOLERANCE_PCT    a presentment may exceed its authorization by this many percent
                             before it is refused as a posting failure (default 10; tips, fuel)
ORPHAN_GRACE_HOURS           a presentment whose authorization has not arrived is parked; after
                             this long it is posted without one (default 72)
FINCI_PRODUCT_CURRENCIES     ``product=CUR`` pairs for cards first seen in get-cards (it carries
                             no currency), e.g. ``prod_debit_eur=EUR prod_prepaid_gbp=GBP``
CARDS_DEFAULT_CURRENCY       currency of a newly seen card whose product is not listed (EUR)
CARDS_REFRESH_OWNERS         extra ``person:<id>`` / ``corporate:<id>`` owners to refresh, beyond
                             the owners of cards already known
CARD_ACTION_MAX_ATTEMPTS     sends of one card status change before it is marked failed (5)
FINCI_API_BASE_URL           FINCI Card API base URL (https; plain http only to loopback outside
                             live mode, for the simulator)
FINCI_API_TOKEN / FINCI_API_SECRET    Card API credentials (secrets: prefer the ``_FILE`` form)

Kept import-free of ``console.settings`` at module level: that module imports this one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import MappingProxyType, SimpleNamespace

_CURRENCY = re.compile(r"[A-Z]{3}")
_OWNER = re.compile(r"(person|corporate):([A-Za-z0-9_.:-]{1,64})")


@dataclass(frozen=True)
class LifecycleSettings:
    keeps_ledger: bool = True
    hold_expiry_days: int = 7
    presentment_tolerance_pct: int = 10
    orphan_grace_hours: int = 72
    product_currencies: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({}))
    default_currency: str = "EUR"
    # (("person", "100001"), ("corporate", "9000"), ...)
    refresh_owners: tuple[tuple[str, str], ...] = ()
    card_action_max_attempts: int = 5
    api_base_url: str | None = None
    api_token: str | None = field(default=None, repr=False)
    api_secret: str | None = field(default=None, repr=False)

    @property
    def card_api_configured(self) -> bool:
        return bool(self.api_base_url and self.api_token and self.api_secret)

    def currency_for(self, product_id: str | None) -> str:
        return self.product_currencies.get(product_id or "", self.default_currency)

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, relaxed: bool) -> LifecycleSettings:
        from console.settings import ConfigError, _bool, _int, _read, require_https_url

        currencies = {}
        for item in (_read(env, "FINCI_PRODUCT_CURRENCIES") or "").replace(",", " ").split():
            product, _, currency = item.partition("=")
            if not product or not _CURRENCY.fullmatch(currency):
                raise ConfigError(f"FINCI_PRODUCT_CURRENCIES: {item!r} is not product=CUR")
            currencies[product] = currency
        default_currency = _read(env, "CARDS_DEFAULT_CURRENCY") or "EUR"
        if not _CURRENCY.fullmatch(default_currency):
            raise ConfigError("CARDS_DEFAULT_CURRENCY must be an ISO 4217 code like EUR")
        owners = []
        for item in (_read(env, "CARDS_REFRESH_OWNERS") or "").replace(",", " ").split():
            match = _OWNER.fullmatch(item)
            if match is None:
                raise ConfigError(f"CARDS_REFRESH_OWNERS: {item!r} is not person:<id> or "
                                  "corporate:<id>")
            owners.append((match[1], match[2]))
        base_url = _read(env, "FINCI_API_BASE_URL") or None
        token = _read(env, "FINCI_API_TOKEN", secret=True) or None
        secret = _read(env, "FINCI_API_SECRET", secret=True) or None
        if base_url is not None:
            # Only ``relaxed`` is consulted: HTTPS always, plain HTTP to loopback when relaxed.
            base_url = require_https_url("FINCI_API_BASE_URL", base_url,
                                         SimpleNamespace(relaxed=relaxed))
            if not token or not secret:
                raise ConfigError("FINCI_API_BASE_URL is set: FINCI_API_TOKEN and "
                                  "FINCI_API_SECRET (or their _FILE forms) are required too")
        return cls(
            keeps_ledger=_bool(env, "KEEPS_LEDGER", True),
            hold_expiry_days=_int(env, "HOLD_EXPIRY_DAYS", 7, minimum=1, maximum=60),
            presentment_tolerance_pct=_int(env, "PRESENTMENT_TOLERANCE_PCT", 10, minimum=0,
                                           maximum=100),
            orphan_grace_hours=_int(env, "ORPHAN_GRACE_HOURS", 72, minimum=1,
                                    maximum=24 * 60),
            product_currencies=MappingProxyType(currencies),
            default_currency=default_currency,
            refresh_owners=tuple(owners),
            card_action_max_attempts=_int(env, "CARD_ACTION_MAX_ATTEMPTS", 5, minimum=1,
                                          maximum=50),
            api_base_url=base_url, api_token=token, api_secret=secret,
        )



# --- the settings in force in this process ---------------------------------------------------
# Handlers run in the worker and jobs in scheduler threads, outside any request: they read the
# settings installed by ``create_app`` (or set by ``configured`` in tests and benchmarks).

_installed: LifecycleSettings | None = None
_override: LifecycleSettings | None = None


def install(settings: LifecycleSettings) -> None:
    global _installed
    _installed = settings


def current() -> LifecycleSettings:
    if _override is not None:
        return _override
    try:
        from flask import current_app, has_app_context

        if has_app_context():
            settings = current_app.extensions.get("settings")
            if settings is not None:
                return settings.lifecycle
    except ImportError:  # pragma: no cover - flask is a hard dependency
        pass
    return _installed or LifecycleSettings()


@contextmanager
def configured(settings: LifecycleSettings) -> Iterator[None]:
    """Run under ``settings`` outside any app (tests, benchmarks)."""
    global _override
    previous, _override = _override, settings
    try:
        yield
    finally:
        _override = previous
