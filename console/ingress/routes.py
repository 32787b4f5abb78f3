"""``POST /webhooks/finci``: verify → store → answer (FINCI.md B.1, B.4).

No session, no cookies, no CSRF (the blueprint is CSRF-exempt and authenticates every request by
signature). Order of checks, cheapest and least trusting first, nothing parsed or written before
all of them pass: source address (trusted proxies, allowlist, rate limit, mTLS pin) → body size
(Content-Length, then at most cap+1 bytes read from the stream, so chunked bodies are capped too)
→ Standard Webhooks signature over the raw bytes → body parsing → store and COMMIT → answer.

Refusals get short JSON bodies that name no detail (operators see the reason on the rejected
traffic page) and are counted without the body: one counter per minute, source and reason
(``services.record_rejection``), so unauthenticated traffic cannot grow a table by a row per
request. Rate-limited requests are not recorded at all.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import re
import time

from flask import Blueprint, Flask, Response, current_app, g, request
from werkzeug.exceptions import HTTPException

from console.finci import contract
from console.finci.payload import PayloadRejected, parse_message
from console.finci.webhook_signature import RejectReason, SignatureRejected, verify
from console.ingress import services
from console.ingress.settings import IngressSettings
from console.ingress.verify import (
    RateLimiter,
    Source,
    SourceRejected,
    check_source,
    peer_address,
    resolve_source,
)
from console.keys.webhook_secrets import secret_set
from console.security.permissions import public
from console.unit_of_work import database

log = logging.getLogger(__name__)

bp = Blueprint("ingress", __name__)

_ANSWERS = {
    400: "malformed", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 413: "too_large", 429: "rate_limited", 503: "unavailable",
}
_WELL_FORMED_ID = re.compile(rf"[\x21-\x7e]{{1,{contract.WEBHOOK_ID_MAX_LENGTH}}}")
# (recorded name, WSGI environ key)
_HEADERS_OF_INTEREST = tuple(
    (name.lower(), "CONTENT_TYPE" if name == "Content-Type" else
     "CONTENT_LENGTH" if name == "Content-Length" else
     "HTTP_" + name.upper().replace("-", "_"))
    for name in ("User-Agent", "Content-Type", "Content-Length", "Transfer-Encoding",
                 "X-Forwarded-For", "X-Request-Id", contract.HEADER_WEBHOOK_ID,
                 contract.HEADER_WEBHOOK_TIMESTAMP))
_HEADER_VALUE_MAX = 200
_READ_CHUNK = 64 * 1024


class Rejected(Exception):
    def __init__(self, reason: str, status: int, detail: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.detail = detail


@bp.record_once
def _on_register(state) -> None:
    app: Flask = state.app
    settings: IngressSettings = app.extensions["settings"].ingress
    app.extensions.setdefault("ingress.rate_limiter", RateLimiter(
        settings.rate_limit_per_s, settings.rate_limit_burst))
    # Injectable for tests of the timestamp tolerance; one reading serves the whole request.
    app.extensions.setdefault("ingress.clock", time.time)
    # Built now so that a misconfigured secret store stops the start (ConfigError), not the
    # first delivery; loading the secrets waits for the first request.
    secret_set(app)


def _settings() -> IngressSettings:
    return current_app.extensions["settings"].ingress


def _identity_key() -> bytes:
    # Derived from the app's secret key, never the key itself (it also signs sessions).
    secret = current_app.extensions["settings"].secret_key.encode()
    return hmac.new(secret, b"ingress business-key fingerprint", hashlib.sha256).digest()


def _json(status: int, body: bytes | None = None) -> Response:
    if body is None:
        body = json.dumps({"status": "error", "error": _ANSWERS.get(status, "error")}).encode()
    return Response(body, status=status, mimetype="application/json")


@bp.post("/webhooks/finci")
@public
def receive():
    arrived = time.monotonic()  # FINCI's 3 s for an authorization answer are running already
    settings = _settings()
    now = current_app.extensions["ingress.clock"]()
    g.ingress_received_at = dt.datetime.fromtimestamp(now, dt.UTC)
    peer = peer_address(request.environ)
    g.ingress_source = Source(peer, None, False)  # until the forwarding chain is understood
    g.ingress_source = source = resolve_source(peer, request.headers.get("X-Forwarded-For"),
                                               settings.trusted_proxies)
    if not current_app.extensions["ingress.rate_limiter"].allow(source.client_ip or "unknown"):
        response = _json(429)
        response.headers["Retry-After"] = "1"
        return response
    check_source(settings, source, request.headers.get)
    body = _read_body(settings.max_body_bytes)

    webhook_id = request.headers.get(contract.HEADER_WEBHOOK_ID)
    timestamp = request.headers.get(contract.HEADER_WEBHOOK_TIMESTAMP)
    try:
        accepted = secret_set(current_app).accepted(settings.secrets, now)
        verified = verify(accepted, webhook_id, timestamp,
                          request.headers.get(contract.HEADER_WEBHOOK_SIGNATURE), body, now,
                          tolerance_seconds=settings.tolerance_s,
                          max_body_bytes=settings.max_body_bytes)
    except SignatureRejected as refused:
        status = 413 if refused.reason is RejectReason.BODY_TOO_LARGE else 401
        raise Rejected(refused.reason.value, status, refused.header) from None
    try:
        message = parse_message(body)
    except PayloadRejected as refused:
        raise Rejected(f"body_{refused.reason.value}", 400, refused.detail[:100] or None) from None

    delivery = services.Delivery(
        webhook_id=str(webhook_id), webhook_timestamp=int(str(timestamp)), body=body,
        verified_by=verified.secret_fingerprint, source=source, headers=_headers_of_interest(),
        received_at=g.ingress_received_at, arrived=arrived)
    try:
        stored = services.store(database(), delivery, message, settings,
                                identity_key=_identity_key())
    except services.StorageUnavailable as exc:
        log.error("webhook not stored, answering 503: %s", exc)
        response = _json(503)
        response.headers["Retry-After"] = str(contract.STORAGE_UNAVAILABLE_RETRY_AFTER_SECONDS)
        return response
    return _json(stored.status, stored.body)


def _read_body(cap: int) -> bytes:
    declared = request.content_length
    if declared is not None and declared > cap:
        raise Rejected("body_too_large", 413)
    # Werkzeug also caps the stream (chunked bodies included), one byte past ours: it raises
    # 413 on any read at its limit, even at the end of the body, so a limit of ``cap`` would
    # refuse a chunked body of exactly ``cap`` bytes. The extra byte is what proves "too large".
    request.max_content_length = cap + 1
    stream = request.stream
    chunks: list[bytes] = []
    total = 0
    while total <= cap:
        chunk = stream.read(min(_READ_CHUNK, cap + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    if total > cap:
        raise Rejected("body_too_large", 413)
    return b"".join(chunks)


def _headers_of_interest() -> dict[str, str]:
    kept = {}
    environ = request.environ
    for name, key in _HEADERS_OF_INTEREST:
        value = environ.get(key)
        if value:
            value = value[:_HEADER_VALUE_MAX]
            if not value.isascii() or not value.isprintable():
                value = "".join(c if " " <= c <= "~" else "?" for c in value)
            kept[name] = services.redact_identifier(value)
    signature = request.headers.get(contract.HEADER_WEBHOOK_SIGNATURE, "")
    # Which signature versions were offered, not the signatures themselves.
    kept["webhook-signature"] = " ".join(
        entry.partition(",")[0][:8] for entry in signature.split(" ")[:16] if entry)
    return kept


def _webhook_id_for_record() -> str | None:
    value = request.headers.get(contract.HEADER_WEBHOOK_ID)
    return value if value and _WELL_FORMED_ID.fullmatch(value) else None


def _refuse(reason: str, status: int, detail: str | None = None) -> Response:
    source = g.get("ingress_source") or Source(peer_address(request.environ), None, False)
    received_at = g.get("ingress_received_at") or dt.datetime.now(dt.UTC)
    services.record_rejection(database(), reason=reason, status=status, source=source,
                              received_at=received_at, detail=detail,
                              webhook_id=_webhook_id_for_record())
    return _json(status)


@bp.errorhandler(Rejected)
def _rejected(error: Rejected):
    return _refuse(error.reason, error.status, error.detail)


@bp.errorhandler(SourceRejected)
def _source_rejected(error: SourceRejected):
    return _refuse(error.reason, error.status)


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException):
    # Werkzeug's own refusals while reading the body: 400 when the client sends less than it
    # declared. (Its 413 cannot happen: _read_body refuses first, one byte before Werkzeug.)
    status = error.code or 400
    if 400 <= status < 500:
        return _refuse("body_incomplete" if status == 400 else f"http_{status}", status)
    return _json(status)
