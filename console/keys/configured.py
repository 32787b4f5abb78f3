"""Record in the inventory the credentials configured outside the console: the FINCI API
token and secret, the SSO client secret, the TLS certificate and the webhook secrets of
``FINCI_WEBHOOK_SECRETS``. Only fingerprints are recorded, never values.

A credential whose value changed (a new fingerprint for the same kind) gets a new active row;
the previous configured row of that kind is retired ("no longer configured"), so the rotation
history shows when each one was in use.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import select
from sqlalchemy.orm import Session

from console.audit.services import Actor
from console.keys import inventory
from console.keys.inventory import Kind, State
from console.keys.models import Credential
from console.keys.services import TlsFiles, _load_certificate
from console.keys.webhook_secrets import record_configured as record_webhook_secrets
from console.settings import Settings

REASON = "recorded from the deployment's configuration"


@dataclass(frozen=True)
class Configured:
    kind: Kind
    name: str
    fingerprint: str
    expires_at: dt.datetime | None = None


def configured_credentials(settings: Settings, tls: TlsFiles) -> list[Configured]:
    found = []
    for kind, name, value in (
            (Kind.FINCI_API_TOKEN, "FINCI_API_TOKEN", settings.lifecycle.api_token),
            (Kind.FINCI_API_SECRET, "FINCI_API_SECRET", settings.lifecycle.api_secret),
            (Kind.SSO_CLIENT_SECRET, "OIDC_CLIENT_SECRET", settings.auth.client_secret)):
        if value:
            found.append(Configured(kind, name, inventory.fingerprint(value.encode())))
    if tls.cert_file:
        try:
            with open(tls.cert_file, "rb") as handle:
                certificate = _load_certificate(handle.read())
        except (OSError, ValueError):
            certificate = None  # the status report says what is wrong with it
        if certificate is not None:
            der = certificate.public_bytes(Encoding.DER)
            found.append(Configured(Kind.TLS_CERTIFICATE, "TLS_CERT_FILE",
                                    hashlib.sha256(der).hexdigest()[:16],
                                    certificate.not_valid_after_utc))
    return found


def record_configured(session: Session, actor: Actor, settings: Settings, tls: TlsFiles, *,
                      at: dt.datetime) -> list[Credential]:
    environment = settings.environment.value
    added = record_webhook_secrets(session, actor, settings.ingress.secrets,
                                   environment=environment, at=at)
    for item in configured_credentials(settings, tls):
        if inventory.find(session, item.kind, item.fingerprint, environment) is not None:
            continue
        previous = list(session.scalars(select(Credential).where(
            Credential.kind == item.kind.value, Credential.environment == environment,
            Credential.store_name.is_(None), Credential.status == State.ACTIVE.value)))
        added.append(inventory.create(
            session, actor, kind=item.kind, name=item.name, environment=environment,
            fingerprint=item.fingerprint, at=at, reason=REASON, expires_at=item.expires_at,
            activate=True))
        for old in previous:
            inventory.retire(session, actor, old, environment=environment, at=at,
                             reason=f"no longer configured; replaced by {item.fingerprint}")
    return added
