"""When a credential configured outside the console was last used: the FINCI API token and
secret (a Card API call FINCI accepted), the SSO client secret (a code the identity provider
redeemed) and the TLS certificate (a request that arrived over the TLS the console serves).

Webhook secrets get their use from the deliveries they verified and card-data keys from the JWE
tokens they decrypted; this module covers the rest, so "last used" on the keys page answers
"is anything still using this?" for every row.

A use is written as one guarded UPDATE of ``credential.last_used_at`` in its own short
transaction, at most once per ``every`` per credential and process: the paths that use a
credential (every TLS request, every Card API call) must not each cost a write. A failed write is
logged and dropped: knowing when a credential was last used never costs an operator the request.
Only fingerprints are handled here, never values.
"""

from __future__ import annotations

import datetime as dt
import logging
import ssl
import threading
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager

from flask import Flask, after_this_request, current_app, has_app_context, request
from sqlalchemy import or_, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from console.db import utcnow
from console.keys.inventory import Kind, State
from console.keys.models import Credential

log = logging.getLogger(__name__)

EVERY = dt.timedelta(minutes=1)
_IN_USE = (State.ACTIVE.value, State.RETIRING.value)

Transaction = Callable[[], AbstractContextManager[Session]]


class UsageRecorder:
    """Records uses of the credentials in ``fingerprints`` (kind -> fingerprint of the value
    this process holds) for ``environment``. Thread-safe; one per process is enough."""

    def __init__(self, transaction: Transaction, environment: str,
                 fingerprints: dict[Kind, str], *, every: dt.timedelta = EVERY,
                 clock: Callable[[], dt.datetime] = utcnow):
        self._transaction = transaction
        self._environment = environment
        self._fingerprints = dict(fingerprints)
        self._every = every
        self._clock = clock
        self._written: dict[Kind, dt.datetime] = {}
        self._lock = threading.Lock()

    def holds(self, kind: Kind) -> bool:
        return kind in self._fingerprints

    def used(self, *kinds: Kind) -> None:
        """Marks ``kinds`` used now (those this process holds and has not marked lately)."""
        at = self._clock()
        due = self._claim(kinds, at)
        if not due:
            return
        try:
            with self._transaction() as session:
                for kind in due:
                    session.execute(
                        update(Credential)
                        .where(Credential.kind == kind.value,
                               Credential.environment == self._environment,
                               Credential.fingerprint == self._fingerprints[kind],
                               Credential.status.in_(_IN_USE),
                               or_(Credential.last_used_at.is_(None),
                                   Credential.last_used_at < at))
                        .values(last_used_at=at)
                        .execution_options(synchronize_session=False))
        except SQLAlchemyError as error:
            with self._lock:  # let the next use try again
                for kind in due:
                    if self._written.get(kind) == at:
                        del self._written[kind]
            log.warning("could not record the use of %s: %s",
                        ", ".join(k.value for k in due), type(error).__name__)

    def _claim(self, kinds: Iterable[Kind], at: dt.datetime) -> list[Kind]:
        with self._lock:
            due = []
            for kind in kinds:
                if kind not in self._fingerprints:
                    continue
                last = self._written.get(kind)
                if last is not None and at - last < self._every:
                    continue
                self._written[kind] = at
                due.append(kind)
            return due


def recorder_for(settings, tls, transaction: Transaction) -> UsageRecorder:
    """The recorder for this deployment's configured credentials (settings.Settings, services.
    TlsFiles): it knows their fingerprints the way the inventory records them."""
    from console.keys.configured import configured_credentials

    fingerprints = {item.kind: item.fingerprint
                    for item in configured_credentials(settings, tls)}
    return UsageRecorder(transaction, settings.environment.value, fingerprints)


def init_app(app: Flask, settings, database) -> None:
    """Gives the app its recorder (``app.extensions["key_usage"]``); when the console serves TLS
    itself (TLS_CERT_FILE), every request that arrived over it marks the certificate used."""
    from console.keys.services import TlsFiles

    recorder = recorder_for(settings, TlsFiles.from_env(), database.transaction)
    app.extensions["key_usage"] = recorder
    if recorder.holds(Kind.TLS_CERTIFICATE):
        @app.before_request
        def _tls_used():
            if isinstance(request.environ.get("gunicorn.socket"), ssl.SSLSocket):
                used_after_response(Kind.TLS_CERTIFICATE)


def marker(*kinds: Kind) -> Callable[[], None] | None:
    """A callable marking ``kinds`` used, for code that learns of a use outside a request (the
    Card API client's accepted answers); None outside an app or when nothing is held."""
    if not has_app_context():
        return None
    recorder: UsageRecorder | None = current_app.extensions.get("key_usage")
    if recorder is None or not any(recorder.holds(kind) for kind in kinds):
        return None
    return lambda: recorder.used(*kinds)


def used_after_response(*kinds: Kind) -> None:
    """In a request: marks ``kinds`` used once the answer has been sent, outside the request's
    own transaction and its latency."""
    mark = marker(*kinds)
    if mark is None:
        return

    @after_this_request
    def _later(response):
        response.call_on_close(mark)
        return response
