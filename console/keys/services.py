"""Credential and key status: one report for the admin page and ``flask keys status``.

Each item says what is configured, whether it is healthy (``ok`` / ``attention`` /
``problem``), why, and what to do. Nothing here reads, returns or logs a secret value: webhook
secrets appear as their fingerprints, the audit key as its key id, credentials as
"configured or not". Rendering the report makes no network call; the only reads are cheap,
time-bounded queries and the TLS certificate file.

Queries: ``webhook_message.verified_by`` has no index of its own (every index is paid for on
the ingress hot path), so usage per secret is counted over the last ``USAGE_WINDOW`` through the
``received_at`` index, never over the whole table. A secret's "last verified" is therefore the
last within that window; older use is reported as "none in 7 days", which is exactly what the
rotation rule needs.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from cryptography import x509
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from console.audit.actions import AuditAction
from console.audit.export_format import key_fingerprint
from console.audit.services import Actor, record
from console.auth.models import BREAK_GLASS_ISSUER, BreakGlassAccount, User
from console.finci.webhook_signature import WebhookSecret
from console.ingress.models import StoredMessage, WebhookRejection
from console.ingress.settings import PUBLISHED_TEST_SECRETS
from console.scheduler.models import JobStatus
from console.settings import Serve, Settings

USAGE_WINDOW = dt.timedelta(days=7)
REJECTION_WINDOW = dt.timedelta(hours=24)
TLS_WARN_DAYS = 30
CARD_JOBS = ("cards.refresh", "cards.send_actions")
# webhook_rejection reasons that point at the secret or the clock rather than at the sender's
# payload: a mismatch after FINCI rotated, or timestamps outside the tolerance.
SIGNATURE_REASON_PREFIXES = ("signature", "timestamp")


class Status(StrEnum):
    OK = "ok"
    ATTENTION = "attention"
    PROBLEM = "problem"


_RANK = {Status.OK: 0, Status.ATTENTION: 1, Status.PROBLEM: 2}


def worst(statuses: Iterable[Status]) -> Status:
    return max(statuses, key=_RANK.__getitem__, default=Status.OK)


@dataclass(frozen=True)
class Finding:
    status: Status
    message: str
    action: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status.value, "message": self.message, "action": self.action}


@dataclass(frozen=True)
class Column:
    name: str
    label: str


@dataclass
class Item:
    key: str
    title: str
    findings: list[Finding] = field(default_factory=list)
    # (name, label, value): JSON-native values or datetimes; shown as "label: value".
    facts: list[tuple[str, str, Any]] = field(default_factory=list)
    columns: tuple[Column, ...] = ()
    rows: list[dict[str, Any]] = field(default_factory=list)
    empty: str = ""  # what the table says when it has no rows

    @property
    def status(self) -> Status:
        return worst(f.status for f in self.findings)

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "title": self.title, "status": self.status.value,
                "findings": [f.as_dict() for f in self.findings],
                "facts": {name: _plain(value) for name, _label, value in self.facts},
                "rows": [{k: _plain(v) for k, v in row.items()} for row in self.rows]}


@dataclass
class KeyStatusReport:
    checked_at: dt.datetime
    environment: str
    items: list[Item]

    @property
    def status(self) -> Status:
        return worst(item.status for item in self.items)

    def count(self, status: Status) -> int:
        return sum(item.status is status for item in self.items)

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status.value, "checked_at": self.checked_at.isoformat(),
                "environment": self.environment,
                "counts": {s.value: self.count(s) for s in Status},
                "items": [item.as_dict() for item in self.items]}


@dataclass(frozen=True)
class TlsFiles:
    """What gunicorn.conf.py serves TLS with (TLS_CERT_FILE / TLS_KEY_FILE); None: terminated
    elsewhere."""

    cert_file: str | None = None
    key_file: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TlsFiles:
        env = os.environ if environ is None else environ
        return cls(env.get("TLS_CERT_FILE") or None, env.get("TLS_KEY_FILE") or None)


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.datetime | dt.date) else value


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def _scrub(text: str | None, secrets: Iterable[str | None]) -> str | None:
    """A job summary is exception text: make sure no configured credential can ride along."""
    if not text:
        return text
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return text


def _day(value: dt.datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "never"


# --- FINCI webhook secrets -------------------------------------------------------------------

def _published_fingerprints() -> frozenset[str]:
    return frozenset(WebhookSecret.parse(s).fingerprint for s in PUBLISHED_TEST_SECRETS)


def secret_usage(session: Session, since: dt.datetime) -> dict[str, tuple[int, dt.datetime]]:
    """fingerprint → (messages verified since ``since``, last verification), over the
    ``received_at`` index only."""
    rows = session.execute(
        select(StoredMessage.verified_by, func.count(), func.max(StoredMessage.received_at))
        .where(StoredMessage.received_at >= since)
        .group_by(StoredMessage.verified_by))
    return {fingerprint: (count, _aware(last)) for fingerprint, count, last in rows}


def webhook_secrets_item(session: Session, settings: Settings, at: dt.datetime) -> Item:
    from console.keys.webhook_secrets import accepted_fingerprints

    # What ingress accepts: configured secrets the inventory has not retired, plus the ones
    # added through rotation (in the secret store).
    states = accepted_fingerprints(session, settings.ingress.secret_fingerprints,
                                   environment=settings.environment.value, at=at)
    configured = tuple(states)
    usage = secret_usage(session, at - USAGE_WINDOW)
    days = USAGE_WINDOW.days
    item = Item("webhook_secrets", "FINCI webhook secrets",
                facts=[("active_secrets", "Active secrets", len(configured)),
                       ("window_days", "Usage counted over (days)", days)],
                columns=(Column("fingerprint", "Fingerprint"), Column("state", "State"),
                         Column("last_verified_at", f"Last verified (within {days} days)"),
                         Column("verified_7d", f"Messages verified, last {days} days"),
                         Column("status", "Status")),
                empty="No secret is configured and no delivery was verified recently.")
    in_use = {fp for fp in configured if usage.get(fp, (0, None))[0] > 0}
    published = _published_fingerprints()
    for fp in configured:
        count, last = usage.get(fp, (0, None))
        idle = count == 0 and bool(in_use)
        item.rows.append({"fingerprint": fp, "state": states[fp], "last_verified_at": last,
                          "verified_7d": count,
                          "status": (Status.ATTENTION if idle or fp in published
                                     else Status.OK).value})
    for fp, (count, last) in sorted(usage.items()):
        if fp not in configured:
            # Verified recently by a secret this process no longer holds: a finished rotation,
            # or another ingress node configured differently.
            item.rows.append({"fingerprint": fp, "state": "no longer configured here",
                              "last_verified_at": last, "verified_7d": count,
                              "status": Status.OK.value})

    if not configured:
        if settings.serve is Serve.CONSOLE:
            item.findings.append(Finding(
                Status.OK, "This node serves only the console; the ingress runs elsewhere with "
                "its own secrets.", "Run `flask --app wsgi keys status` on an ingress node to "
                "check its secrets."))
        else:
            item.findings.append(Finding(
                Status.PROBLEM, "No webhook secret is configured: the ingress refuses every "
                "delivery (401).", "Set FINCI_WEBHOOK_SECRETS (or FINCI_WEBHOOK_SECRETS_FILE) "
                "to the endpoint secret FINCI issued, then restart."))
    for fp in configured:
        if fp in published:
            item.findings.append(Finding(
                Status.ATTENTION, f"Secret {fp} is the published Standard Webhooks test-vector "
                "secret: anyone can sign deliveries with it (sandbox only; production refuses "
                "it at start).", "Replace it with the endpoint secret FINCI issued for this "
                "sandbox."))
    for fp in configured:
        if fp not in in_use and in_use:
            others = ", ".join(sorted(in_use))
            item.findings.append(Finding(
                Status.ATTENTION, f"Secret {fp} verified nothing in {days} days while {others} "
                "did: the rotation has finished.",
                f"Remove {fp} from FINCI_WEBHOOK_SECRETS and restart."
                if fp in settings.ingress.secret_fingerprints else
                f"Retire {fp} in the inventory below (or `flask --app wsgi keys retire`)."))
    if configured and not item.findings:
        total = sum(usage.get(fp, (0, None))[0] for fp in configured)
        message = (f"{len(configured)} secret(s) active; {total} message(s) verified in the "
                   f"last {days} days." if total else
                   f"{len(configured)} secret(s) active; no delivery verified in the last "
                   f"{days} days, so there is nothing to compare yet.")
        item.findings.append(Finding(Status.OK, message))
    return item


def signature_rejections_item(session: Session, at: dt.datetime) -> Item:
    since = at - REJECTION_WINDOW
    rows = session.execute(
        select(WebhookRejection.reason, func.sum(WebhookRejection.count),
               func.max(WebhookRejection.last_seen_at))
        .where(WebhookRejection.seen_since(since),
               or_(*(WebhookRejection.reason.startswith(prefix)
                     for prefix in SIGNATURE_REASON_PREFIXES)))
        .group_by(WebhookRejection.reason)
        .order_by(WebhookRejection.reason)).all()
    total = sum(int(count) for _reason, count, _last in rows)
    item = Item("signature_rejections", "Webhook signature rejections (last 24 h)",
                facts=[("total_24h", "Refused for signature or timestamp", total)],
                columns=(Column("reason", "Reason"), Column("count", "Count"),
                         Column("last_at", "Last")),
                rows=[{"reason": reason, "count": int(count), "last_at": _aware(last)}
                      for reason, count, last in rows],
                empty="No delivery was refused for its signature or timestamp in the last 24 h.")
    if total:
        item.findings.append(Finding(
            Status.ATTENTION, f"{total} delivery attempt(s) refused for signature or timestamp "
            "in the last 24 h: FINCI may sign with a secret we do not hold (rotated on their "
            "side), or a clock is off.", "Compare the secret in FINCI's portal with the "
            "fingerprints above; see Deliveries → Rejections for sources and times."))
    else:
        item.findings.append(Finding(Status.OK, "No signature or timestamp rejections in the "
                                     "last 24 h."))
    return item


# --- FINCI Card API --------------------------------------------------------------------------

def card_api_item(session: Session, settings: Settings) -> Item:
    lifecycle = settings.lifecycle
    jobs = {status.name: status for status in session.scalars(
        select(JobStatus).where(JobStatus.name.in_(CARD_JOBS)))}
    item = Item("card_api", "FINCI Card API credentials",
                facts=[("configured", "Configured", lifecycle.card_api_configured),
                       ("base_url", "Base URL", lifecycle.api_base_url)],
                columns=(Column("job", "Job"), Column("last_outcome", "Last outcome"),
                         Column("last_finished_at", "Finished"), Column("runs", "Runs"),
                         Column("failures", "Failures"), Column("last_summary", "Summary")),
                empty="No card job has run yet.")
    hidden = (lifecycle.api_token, lifecycle.api_secret)
    for name in CARD_JOBS:
        job = jobs.get(name)
        if job is not None:
            item.rows.append({"job": name, "last_outcome": job.last_outcome,
                              "last_finished_at": _aware(job.last_finished_at),
                              "runs": job.runs, "failures": job.failures,
                              "last_summary": _scrub(job.last_summary, hidden)})
    if not lifecycle.card_api_configured:
        item.findings.append(Finding(
            Status.ATTENTION, "The Card API is not configured: card status changes are not "
            "sent to FINCI and the card view is not refreshed.", "Set FINCI_API_BASE_URL, "
            "FINCI_API_TOKEN and FINCI_API_SECRET (prefer the _FILE forms), then restart."))
        return item
    for name in CARD_JOBS:
        job = jobs.get(name)
        if job is None:
            item.findings.append(Finding(
                Status.ATTENTION, f"{name} has not run yet, so the credentials are untested.",
                "Check that a scheduler is running (`flask --app wsgi scheduler`)."))
        elif job.last_outcome == "failure":
            item.findings.append(Finding(
                Status.PROBLEM, f"{name} failed on its last run "
                f"({_day(_aware(job.last_finished_at))}): the credentials may be refused or "
                "FINCI unreachable.", "Read the summary below and the scheduler log; if FINCI "
                "answers 401/403, check the token and secret with FINCI."))
    if not item.findings:
        item.findings.append(Finding(Status.OK, "Configured; the last run of each card job "
                                     "succeeded."))
    return item


# --- audit export signing key ----------------------------------------------------------------

def audit_key_item(settings: Settings) -> Item:
    key = settings.audit.export_signing_key
    key_id = key_fingerprint(key.public_key()) if key is not None else None
    item = Item("audit_signing_key", "Audit export signing key",
                facts=[("configured", "Configured", key is not None), ("key_id", "Key id", key_id)])
    if key is None:
        item.findings.append(Finding(
            Status.ATTENTION, "No signing key: audit exports are refused and checkpoints are "
            "not signed.", "Generate one with `openssl genpkey -algorithm ed25519`, mount it as "
            "AUDIT_EXPORT_SIGNING_KEY_FILE and restart."))
    else:
        item.findings.append(Finding(Status.OK, f"Configured; exports are signed with key "
                                     f"{key_id}."))
    return item


# --- sign-in: OIDC and break-glass -----------------------------------------------------------

def sign_in_item(session: Session, settings: Settings, at: dt.datetime) -> Item:
    auth = settings.auth
    accounts = session.execute(
        select(BreakGlassAccount, User).join(User, BreakGlassAccount.user_id == User.id)
        .where(User.issuer == BREAK_GLASS_ISSUER).order_by(User.subject)).all()
    item = Item("sign_in", "Sign-in: OIDC and break-glass",
                facts=[("oidc_configured", "OIDC configured", auth.oidc_configured),
                       ("issuer", "Issuer", auth.issuer),
                       ("client_id", "Client id", auth.client_id),
                       ("break_glass_enabled", "Break-glass enabled", auth.break_glass_enabled),
                       ("break_glass_accounts", "Break-glass accounts", len(accounts))],
                columns=(Column("username", "Account"), Column("last_login_at", "Last used"),
                         Column("locked", "Locked"), Column("locked_until", "Locked until"),
                         Column("disabled", "Disabled")),
                empty="No break-glass account exists.")
    locked = []
    for account, user in accounts:
        until = _aware(account.locked_until)
        is_locked = until is not None and until > at
        if is_locked:
            locked.append((user.subject, until))
        # The account name as `flask auth break-glass` commands take it.
        item.rows.append({"username": user.subject, "last_login_at": _aware(user.last_login_at),
                          "locked": is_locked, "locked_until": until if is_locked else None,
                          "disabled": user.disabled_at is not None})
    if not auth.oidc_configured:
        item.findings.append(Finding(
            Status.ATTENTION, "Single sign-on is not configured: only break-glass accounts can "
            "sign in.", "Set OIDC_ISSUER, OIDC_CLIENT_ID and OIDC_CLIENT_SECRET (or its _FILE "
            "form), then restart."))
    if auth.break_glass_enabled and not accounts:
        item.findings.append(Finding(
            Status.ATTENTION, "Break-glass is enabled but no account exists: there is no way "
            "in when the identity provider is down.", "Create one with `flask --app wsgi auth "
            "break-glass create`."))
    for username, until in locked:
        item.findings.append(Finding(
            Status.ATTENTION, f"Break-glass account {username} is locked until {_day(until)} "
            "after repeated failed sign-ins.", "Find out who tried (audit log, "
            f"auth.break_glass.login); then `flask --app wsgi auth break-glass unlock "
            f"{username}`."))
    if not item.findings:
        state = (f"on, {len(accounts)} account(s)" if auth.break_glass_enabled else "off")
        item.findings.append(Finding(Status.OK, f"SSO configured ({auth.issuer}); break-glass "
                                     f"{state}."))
    return item


# --- TLS -------------------------------------------------------------------------------------

def _load_certificate(data: bytes) -> x509.Certificate:
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificates(data)[0]  # the leaf comes first
    return x509.load_der_x509_certificate(data)


def tls_item(tls: TlsFiles, at: dt.datetime) -> Item:
    item = Item("tls", "TLS certificate")
    if not tls.cert_file:
        item.facts.append(("served_here", "Served by the console", False))
        item.findings.append(Finding(
            Status.OK, "TLS is terminated in front of the console (TLS_CERT_FILE is not set).",
            "Watch the certificate's expiry on the proxy or load balancer."))
        return item
    item.facts += [("served_here", "Served by the console", True),
                   ("cert_file", "Certificate file", tls.cert_file),
                   ("key_file", "Key file", tls.key_file)]
    try:
        with open(tls.cert_file, "rb") as handle:
            certificate = _load_certificate(handle.read(1024 * 1024))
    except OSError as error:
        item.findings.append(Finding(
            Status.PROBLEM, f"The certificate file cannot be read ({error.strerror}).",
            "Check TLS_CERT_FILE's path and permissions; gunicorn cannot start without it."))
        return item
    except (ValueError, IndexError):
        item.findings.append(Finding(
            Status.PROBLEM, "The certificate file holds no readable X.509 certificate.",
            "Put the PEM certificate (leaf first, then the chain) at TLS_CERT_FILE and "
            "restart."))
        return item
    not_after = certificate.not_valid_after_utc
    not_before = certificate.not_valid_before_utc
    days_left = (not_after - at).days
    item.facts += [("subject", "Subject", certificate.subject.rfc4514_string()),
                   ("issuer", "Issuer", certificate.issuer.rfc4514_string()),
                   ("not_after", "Expires", not_after),
                   ("days_left", "Days left", days_left)]
    renew = ("Install a renewed certificate at TLS_CERT_FILE (and its key at TLS_KEY_FILE), "
             "then restart gunicorn.")
    if at >= not_after:
        item.findings.append(Finding(Status.PROBLEM, f"The certificate expired on "
                                     f"{_day(not_after)}: browsers refuse the console.", renew))
    elif at < not_before:
        item.findings.append(Finding(Status.PROBLEM, f"The certificate is not valid before "
                                     f"{_day(not_before)}.", "Check the clock and the file."))
    elif days_left < TLS_WARN_DAYS:
        item.findings.append(Finding(Status.ATTENTION, f"The certificate expires in {days_left} "
                                     f"day(s), on {_day(not_after)}.", renew))
    else:
        item.findings.append(Finding(Status.OK, f"Valid until {_day(not_after)} ({days_left} "
                                     "days left)."))
    if tls.key_file and not os.path.isfile(tls.key_file):
        item.findings.append(Finding(Status.PROBLEM, "TLS_KEY_FILE does not name a file.",
                                     "Fix the path; gunicorn cannot start without the key."))
    return item


# --- the report ------------------------------------------------------------------------------

def key_status(session: Session, settings: Settings, *, at: dt.datetime,
               tls: TlsFiles) -> KeyStatusReport:
    return KeyStatusReport(
        checked_at=at, environment=settings.environment.value,
        items=[webhook_secrets_item(session, settings, at),
               signature_rejections_item(session, at),
               card_api_item(session, settings),
               audit_key_item(settings),
               sign_in_item(session, settings, at),
               tls_item(tls, at)])


def view_key_status(session: Session, settings: Settings, *, actor: Actor, at: dt.datetime,
                    tls: TlsFiles) -> KeyStatusReport:
    """The report, with its viewing audited in the caller's transaction (page and CLI alike)."""
    report = key_status(session, settings, at=at, tls=tls)
    record(session, actor=actor, action=AuditAction.KEYS_STATUS_VIEW,
           details={"status": report.status.value,
                    "needs_action": [i.key for i in report.items if i.status is not Status.OK]})
    return report
