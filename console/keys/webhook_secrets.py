"""Webhook signing secrets: rotation with overlap, and the set ingress verifies against.

Rotation: ``add_webhook_secret`` writes the new ``whsec_…`` value to the secret store under
``webhook/<environment>/<fingerprint>`` and records it active in the inventory; every other
active webhook secret of this environment starts retiring, still accepted until the overlap
window (``KEYS_WEBHOOK_OVERLAP_HOURS``) ends. ``retire`` (or the end of the window) makes the old
one fail verification; ``revoke`` does the same at once, for a leaked secret.

Secrets configured the old way (``FINCI_WEBHOOK_SECRETS``) take part too: they are recorded in
the inventory the first time a rotation happens (``record_configured``), and one the inventory
says is retired or revoked is no longer accepted even though it is still configured.

The hot path: :class:`WebhookSecretSet` keeps the accepted secrets in memory. The first request
of a process loads them (one query, one store read per secret); afterwards a background thread
reloads them every ``KEYS_CACHE_SECONDS`` and the request only filters the cached list by the
clock, so a request never waits on the database or the store and a retiring secret stops
verifying exactly at its deadline. A change made in this process takes effect at once
(``invalidate``); one made elsewhere (the CLI, another node) within ``KEYS_CACHE_SECONDS``. If a
reload fails, the last good set stays in use and the failure is logged.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from console.audit.services import Actor
from console.finci.webhook_signature import InvalidWebhookSecret, WebhookSecret

# The same refusals as FINCI_WEBHOOK_SECRETS at start (console.ingress.settings).
from console.ingress.settings import PUBLISHED_TEST_SECRETS, _guessable
from console.keys import inventory
from console.keys.inventory import InventoryError, Kind, State
from console.keys.models import Credential
from console.secrets.store import (
    ReadOnlyStore,
    SecretNotFound,
    SecretStore,
    SecretStoreError,
    check_name,
)

log = logging.getLogger(__name__)

PREFIX = "webhook"


def store_name(environment: str, fingerprint: str) -> str:
    return f"{PREFIX}/{environment}/{fingerprint}"


def record_configured(session: Session, actor: Actor, secrets: Iterable[WebhookSecret], *,
                      environment: str, at: dt.datetime) -> list[Credential]:
    """Inventory rows for configured secrets that have none yet (they stay where they are)."""
    added = []
    for secret in secrets:
        if inventory.find(session, Kind.WEBHOOK_SECRET, secret.fingerprint, environment) is None:
            added.append(inventory.create(
                session, actor, kind=Kind.WEBHOOK_SECRET, name="FINCI_WEBHOOK_SECRETS",
                environment=environment, fingerprint=secret.fingerprint, at=at, activate=True,
                reason="configured in FINCI_WEBHOOK_SECRETS before the inventory recorded it"))
    return added


def add_webhook_secret(session: Session, store: SecretStore | None, actor: Actor, *,
                       value: str | None, environment: str, configured: Iterable[WebhookSecret],
                       at: dt.datetime, reason: str, overlap: dt.timedelta,
                       stored_as: str | None = None) -> Credential:
    """Make a new secret active; the others of this environment start retiring.

    ``value``: written to the store under ``webhook/<environment>/<fingerprint>``. Or
    ``stored_as``: a secret the platform already put in a read-only store (files, or Vault
    written by another tool), which must sit under ``webhook/<environment>/``."""
    if store is None:
        raise InventoryError("no secret store is configured (SECRETS_BACKEND)")
    if (value is None) == (stored_as is None):
        raise InventoryError("give either the new secret or the store name it is kept under")
    if stored_as is not None:
        value = _read_stored(store, stored_as, environment)
    secret = check_new(session, value, environment)
    record_configured(session, actor, configured, environment=environment, at=at)
    name = stored_as or store_name(environment, secret.fingerprint)
    if stored_as is None:
        try:
            # Store first: a value stored but not recorded is never trusted; the reverse would
            # be an active secret nobody can read.
            store.put(name, secret.export().encode("ascii"))
        except ReadOnlyStore as exc:
            raise InventoryError(f"the {store.kind} secret store is read-only: {exc} (then "
                                 "name the stored secret instead)") from None
        except SecretStoreError as exc:
            raise InventoryError(f"the secret store refused the new secret: {exc}") from None
    others = list(session.scalars(select(Credential).where(
        Credential.kind == Kind.WEBHOOK_SECRET.value, Credential.environment == environment,
        Credential.status == State.ACTIVE.value)))
    credential = inventory.create(session, actor, kind=Kind.WEBHOOK_SECRET, name=name,
                                  environment=environment, fingerprint=secret.fingerprint,
                                  store_name=name, at=at, reason=reason, activate=True)
    for old in others:
        inventory.schedule_retire(session, actor, old, environment=environment, at=at,
                                  retire_after=at + overlap,
                                  reason=f"replaced by {secret.fingerprint}: {reason}"[:500])
    return credential


def check_new(session: Session, value: str | None, environment: str) -> WebhookSecret:
    """The parsed new secret, or InventoryError: not a secret, a published or guessable one in
    production, or one the inventory already holds."""
    value = value or ""
    try:
        secret = WebhookSecret.parse(value)
    except InvalidWebhookSecret as exc:
        raise InventoryError(f"not a webhook secret: {exc}") from None
    if environment == "production" and value.strip() in PUBLISHED_TEST_SECRETS:
        raise InventoryError("a published test secret is refused in production")
    if environment == "production" and _guessable(value.strip()):
        raise InventoryError("a secret that is not random (e.g. all zero bytes) is refused in "
                             "production")
    if inventory.find(session, Kind.WEBHOOK_SECRET, secret.fingerprint, environment):
        raise InventoryError(f"webhook secret {secret.fingerprint} is already in the inventory")
    return secret


def read_stored(store: SecretStore, name: str, environment: str) -> str:
    """The value a read-only store holds under ``name`` (which must be this environment's)."""
    return _read_stored(store, name, environment)


def _read_stored(store: SecretStore, name: str, environment: str) -> str:
    try:
        check_name(name)
    except ValueError as exc:
        raise InventoryError(str(exc)) from None
    if not name.startswith(store_name(environment, "")):
        raise InventoryError(f"a {environment} webhook secret is stored under "
                             f"{store_name(environment, '')}…; {name!r} is refused")
    try:
        return store.get(name).decode("ascii")
    except SecretNotFound:
        raise InventoryError(f"the {store.kind} store has no secret {name!r}") from None
    except SecretStoreError as exc:
        raise InventoryError(f"the secret store cannot read {name!r}: {exc}") from None
    except UnicodeDecodeError:
        raise InventoryError(f"{name!r} does not hold a whsec_ secret") from None


def accepted_fingerprints(session: Session, configured: Iterable[str], *, environment: str,
                          at: dt.datetime) -> dict[str, str]:
    """fingerprint -> state ("active", "retiring until …") of every secret ingress accepts at
    ``at``, from the inventory and the configuration, without reading the store (status page)."""
    rows = {row.fingerprint: row for row in session.scalars(select(Credential).where(
        Credential.kind == Kind.WEBHOOK_SECRET.value, Credential.environment == environment))}
    found: dict[str, str] = {}

    def state(row: Credential | None) -> str | None:
        if row is None:
            return "active"
        if row.status == State.ACTIVE.value:
            return "active"
        if row.status == State.RETIRING.value and row.retire_after and row.retire_after > at:
            return f"retiring until {row.retire_after.strftime('%Y-%m-%d %H:%M UTC')}"
        return None

    for fp in configured:
        if (label := state(rows.get(fp))) is not None:
            found[fp] = label
    for fp, row in rows.items():
        if row.store_name and fp not in found and (label := state(row)) is not None:
            found[fp] = label
    return found


@dataclass(frozen=True)
class _Loaded:
    stored: tuple[tuple[WebhookSecret, float | None], ...]  # from the store, with deadline
    deadlines: dict[str, float | None]  # fingerprint -> deadline, for accepted inventory rows
    refused: frozenset[str]  # fingerprints the inventory retired or revoked


_NOTHING = _Loaded((), {}, frozenset())


class WebhookSecretSet:
    def __init__(self, environment: str, store: SecretStore | None,
                 session_factory: Callable[[], Session], *, cache_seconds: float = 30.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.environment = str(environment)
        self.store = store
        self.session_factory = session_factory
        self.cache_seconds = cache_seconds
        self.monotonic = monotonic
        self._loaded: _Loaded | None = None
        self._loaded_at = 0.0
        self._values: dict[str, WebhookSecret] = {}  # store name -> parsed, read once
        self._lock = threading.Lock()
        self._refreshing = False
        self._reload_now = False

    def accepted(self, configured: Iterable[WebhookSecret], now: float) -> tuple[WebhookSecret,
                                                                                 ...]:
        """The secrets a delivery at ``now`` (epoch seconds) may be signed with."""
        loaded = self._loaded
        if loaded is None or self._reload_now:
            loaded = self.refresh()
        elif self.monotonic() - self._loaded_at >= self.cache_seconds:
            self._refresh_in_background()
        result: list[WebhookSecret] = []
        for secret in configured:
            fp = secret.fingerprint
            deadline = loaded.deadlines.get(fp)
            if fp not in loaded.refused and (deadline is None or deadline > now):
                result.append(secret)
        for secret, deadline in loaded.stored:
            if (deadline is None or deadline > now) and secret not in result:
                result.append(secret)
        return tuple(result)

    def invalidate(self) -> None:
        """A change made in this process: the next call reloads before answering."""
        self._reload_now = True

    def refresh(self) -> _Loaded:
        try:
            with self.session_factory() as session:
                loaded = self._load(session)
        except Exception:  # keep verifying with what we had
            log.warning("webhook secrets: reload failed; keeping the previous set",
                        exc_info=True)
            loaded = self._loaded or _NOTHING
        self._loaded, self._loaded_at, self._reload_now = loaded, self.monotonic(), False
        return loaded

    def _refresh_in_background(self) -> None:
        with self._lock:
            if self._refreshing:
                return
            self._refreshing = True

        def run() -> None:
            try:
                self.refresh()
            finally:
                self._refreshing = False

        threading.Thread(target=run, name="webhook-secrets-refresh", daemon=True).start()

    def _load(self, session: Session) -> _Loaded:
        rows = session.scalars(select(Credential).where(
            Credential.kind == Kind.WEBHOOK_SECRET.value,
            Credential.environment == self.environment))
        stored: list[tuple[WebhookSecret, float | None]] = []
        deadlines: dict[str, float | None] = {}
        refused: set[str] = set()
        expected_prefix = store_name(self.environment, "")
        for row in rows:
            if row.status in (State.RETIRED.value, State.REVOKED.value, State.PENDING.value):
                refused.add(row.fingerprint)
                continue
            deadline = row.retire_after.timestamp() if row.retire_after else None
            deadlines[row.fingerprint] = deadline
            if row.store_name is None:
                continue
            if not row.store_name.startswith(expected_prefix):
                log.error("webhook secrets: %s is not stored for %s; refused", row.fingerprint,
                          self.environment)
                continue
            secret = self._read(row)
            if secret is not None:
                stored.append((secret, deadline))
        return _Loaded(tuple(stored), deadlines, frozenset(refused))

    def _read(self, row: Credential) -> WebhookSecret | None:
        secret = self._values.get(row.store_name or "")
        if secret is None:
            if self.store is None:
                log.error("webhook secrets: %s is in the store but no store is configured",
                          row.fingerprint)
                return None
            try:
                secret = WebhookSecret.parse(self.store.get(row.store_name or "")
                                             .decode("ascii"))
            except (SecretStoreError, InvalidWebhookSecret, UnicodeDecodeError) as exc:
                log.error("webhook secrets: cannot use %s (%s)", row.fingerprint,
                          type(exc).__name__)
                return None
        if secret.fingerprint != row.fingerprint:
            log.error("webhook secrets: the stored value of %s has another fingerprint; refused",
                      row.fingerprint)
            return None
        self._values[row.store_name or ""] = secret
        return secret


def secret_set(app) -> WebhookSecretSet:
    """This process's set (one per app), built on first use."""
    found = app.extensions.get("keys.webhook_secrets")
    if found is None:
        from console.secrets.factory import app_store

        settings = app.extensions["settings"]
        database = app.extensions["database"]
        found = app.extensions["keys.webhook_secrets"] = WebhookSecretSet(
            settings.environment.value, app_store(app), database.session,
            cache_seconds=settings.secrets.cache_seconds)
    return found
