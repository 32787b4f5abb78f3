"""Helpers for the credentials and keys tests: inbox and rejection rows, job runs, certificates,
and the secret values that must never appear anywhere."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from console.auth.settings import AuthSettings
from console.db import utcnow
from console.finci.webhook_signature import WebhookSecret
from console.ingress.models import StoredMessage, WebhookRejection, minute_of
from console.ingress.settings import IngressSettings
from console.scheduler.models import JobStatus
from console.transactions.settings import LifecycleSettings

TEST_VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OLD_SECRET = WebhookSecret.generate().export()
NEW_SECRET = WebhookSecret.generate().export()
API_TOKEN = "tok-keys-test-" + "T" * 24
API_SECRET = "sec-keys-test-" + "S" * 32
OIDC_SECRET = "oidc-client-secret-" + "O" * 24

_ids = itertools.count(1)


def fingerprint(secret: str) -> str:
    return WebhookSecret.parse(secret).fingerprint


def ingress(*secrets: str) -> IngressSettings:
    return IngressSettings(secrets=tuple(WebhookSecret.parse(s) for s in secrets))


def card_api() -> LifecycleSettings:
    return LifecycleSettings(api_base_url="https://api.finci.example", api_token=API_TOKEN,
                             api_secret=API_SECRET)


def oidc() -> AuthSettings:
    return AuthSettings(issuer="https://idp.example/realms/console", client_id="finci-console",
                        client_secret=OIDC_SECRET)


def add_message(session, verified_by: str, received_at: dt.datetime) -> None:
    n = next(_ids)
    session.add(StoredMessage(
        webhook_id=f"msg_keys_{n}_{verified_by}", business_key=f"presentment:keys-{n}",
        type="presentment", known_type=True, finci_id=f"keys-{n}", finci_created_at=received_at,
        webhook_timestamp=int(received_at.timestamp()), received_at=received_at, body="{}",
        body_sha256="0" * 64, verified_by=verified_by, answer_status=200, answer_body="{}",
        next_attempt_at=received_at, status="processed"))
    session.flush()


def add_rejection(session, reason: str, received_at: dt.datetime) -> None:
    session.add(WebhookRejection(minute=minute_of(received_at), source_ip="203.0.113.9",
                                 reason=reason, count=1, first_seen_at=received_at,
                                 last_seen_at=received_at, http_status=401))
    session.flush()


def add_job(session, name: str, outcome: str, summary: str = "") -> None:
    at = utcnow()
    session.add(JobStatus(name=name, last_started_at=at, last_finished_at=at,
                          last_outcome=outcome, last_summary=summary, runs=3,
                          failures=int(outcome == "failure")))
    session.flush()


def make_certificate(path, *, not_before: dt.datetime, not_after: dt.datetime,
                     common_name: str = "console.example") -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Keys Test CA")])
    certificate = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(not_before).not_valid_after(not_after)
                   .sign(key, hashes.SHA256()))
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def audit_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def secret_strings(settings) -> list[str]:
    """Every secret value the settings hold, as text that must never be shown or logged."""
    values = [secret.export() for secret in settings.ingress.secrets]
    values += [s.removeprefix("whsec_") for s in values]
    values += [v for v in (settings.lifecycle.api_token, settings.lifecycle.api_secret,
                           settings.auth.client_secret, settings.secret_key) if v]
    key = settings.audit.export_signing_key
    if key is not None:
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        values.append(pem.splitlines()[1])  # the base64 body of the private key
    return values


@pytest.fixture
def now() -> dt.datetime:
    return utcnow()


def use_store(app, store):
    """Give ``app`` this secret store (and a fresh webhook secret set that reads it)."""
    app.extensions["secrets.store"] = store
    app.extensions.pop("keys.webhook_secrets", None)
    return store
