"""The ingress hot path: store one verified delivery durably and work out the answer.

The ingress owns its transaction instead of using the request session: ``store`` opens it,
INSERTs and COMMITs, and only then returns the answer, so a 2xx can never leave before the data is
durable. Any database failure (connect or pool timeout ≈ 1 s, failed commit) surfaces as
``StorageUnavailable`` and becomes a 503 with Retry-After; FINCI then retries.

Idempotency, concurrency-safe on both backends:

1. ``INSERT … ON CONFLICT DO NOTHING RETURNING id`` into ``webhook_message``; the UNIQUE
   constraints on ``webhook_id`` and ``business_key`` decide which delivery creates the message.
   A racing duplicate waits on the unique index (PostgreSQL) or the write lock (SQLite) until the
   winner commits, then inserts nothing.
2. Nothing inserted → read the winner (by ``webhook_id``, else ``business_key``) and compare the
   SHA-256 of the original bytes: equal → a duplicate, answered exactly as the first time;
   different → a conflict, recorded for review and never applied.
3. Every accepted delivery appends one ``webhook_delivery`` row, then COMMIT.

Authorization requests are handed to the decisioning port after step 1 and before COMMIT, so the
answer is stored with the message and decisioning never runs twice for one message.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import Row, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from console.db import Database
from console.finci import contract
from console.finci.payload import WebhookMessage
from console.ingress import decisioning_port
from console.ingress.models import (
    Disposition,
    MessageStatus,
    StoredMessage,
    WebhookDelivery,
    WebhookRejection,
)
from console.ingress.settings import IngressSettings
from console.ingress.verify import Source
from console.security.redaction import redact_text, redact_value

log = logging.getLogger(__name__)

# Every accepted non-authorization message, and the body of every stored answer, in FINCI's words.
STORED_BODY = json.dumps({"status": "success"}).encode()


class StorageUnavailable(Exception):
    """The database could not durably store the delivery; answer 503 with Retry-After."""


@dataclass(frozen=True)
class Delivery:
    """One verified delivery, as the route hands it over."""

    webhook_id: str
    webhook_timestamp: int
    body: bytes
    verified_by: str
    source: Source
    headers: Mapping[str, str]
    received_at: dt.datetime


@dataclass(frozen=True)
class Stored:
    status: int
    body: bytes
    disposition: str
    message_id: int


def business_key(message: WebhookMessage) -> str:
    """``type|request|id``, ``type|advice|id`` or ``type|-|id``: unambiguous because ``type``
    cannot contain ``|`` and the id comes last (B.2: a request and its advice share ``id``)."""
    message_type, finci_id, advice = message.business_key
    tag = "-" if advice is None else ("advice" if advice else "request")
    return f"{message_type}|{tag}|{finci_id}"


def masked_body(body: bytes, message: WebhookMessage) -> tuple[str, bool]:
    """The body to store: the original text with card numbers masked, still valid JSON."""
    text = body.decode("utf-8")  # parse_message has already proved it is UTF-8
    masked = redact_text(text)
    if masked == text:
        return text, False
    try:
        json.loads(masked)
    except ValueError:
        # A card number as a bare JSON number masks to invalid JSON: store the parsed document
        # with the number masked as a string instead.
        masked = json.dumps(redact_value(message.raw), ensure_ascii=False)
    return masked, True


_MESSAGES = StoredMessage.__table__
_DELIVERIES = WebhookDelivery.__table__
_REJECTIONS = WebhookRejection.__table__
# Built once: executed with plain parameters, so SQLAlchemy reuses the compiled statement.
_INSERT_MESSAGE = {
    "postgresql": postgresql.insert(_MESSAGES).on_conflict_do_nothing().returning(_MESSAGES.c.id),
    "sqlite": sqlite.insert(_MESSAGES).on_conflict_do_nothing().returning(_MESSAGES.c.id),
}
_INSERT_DELIVERY = insert(_DELIVERIES)
_INSERT_REJECTION = insert(_REJECTIONS)


def store(database: Database, delivery: Delivery, message: WebhookMessage,
          settings: IngressSettings) -> Stored:
    digest = hashlib.sha256(delivery.body).hexdigest()
    key = business_key(message)
    try:
        with database.transaction() as session:
            return _store(session, delivery, message, settings, digest, key)
    except SQLAlchemyError as exc:
        raise StorageUnavailable(type(exc).__name__) from exc


def _store(session: Session, delivery: Delivery, message: WebhookMessage,
           settings: IngressSettings, digest: str, key: str) -> Stored:
    body_text, was_masked = masked_body(delivery.body, message)
    is_request = message.is_authorization_request
    safe = decisioning_port.Answer.safe_default(settings.safe_default.value, "pending")
    connection = session.connection()
    message_id = connection.execute(_INSERT_MESSAGE[connection.dialect.name], dict(
        webhook_id=delivery.webhook_id, business_key=key, type=message.type,
        known_type=message.known_type, finci_id=message.id,
        advice=message.advice if message.type == contract.MessageType.AUTHORIZATION else None,
        token_id=message.token_id, finci_created_at=message.created_at,
        webhook_timestamp=delivery.webhook_timestamp, received_at=delivery.received_at,
        body=body_text, body_sha256=digest, body_masked=was_masked,
        source_ip=delivery.source.client_ip, verified_by=delivery.verified_by,
        answer_status=int(contract.IngressAnswer.ACCEPTED),
        answer_body=(safe.body if is_request else STORED_BODY).decode(),
        status=MessageStatus.PENDING, attempts=0, next_attempt_at=delivery.received_at,
        lease_token=None, lease_owner=None, lease_until=None, processed_at=None, outcome=None,
        last_error=None, replay_job_id=None, decision=None, decision_reason=None,
    )).scalar_one_or_none()

    if message_id is not None:
        disposition = Disposition.FIRST
        answer_status, answer_body = int(contract.IngressAnswer.ACCEPTED), STORED_BODY
        if is_request:
            answer = decisioning_port.decide(session, message,
                                             safe_default=settings.safe_default.value)
            answer_body = answer.body
            session.execute(update(StoredMessage).where(StoredMessage.id == message_id).values(
                answer_body=answer_body.decode(), decision=answer.status,
                decision_reason=answer.reason))
    else:
        winner = _winner(session, delivery.webhook_id, key)
        message_id = winner.id
        if winner.body_sha256 == digest:
            disposition = Disposition.DUPLICATE
            answer_status, answer_body = winner.answer_status, winner.answer_body.encode()
        else:
            disposition = Disposition.CONFLICT
            answer_status = int(contract.IngressAnswer.ACCEPTED)
            # A request we cannot match to what we decided is declined: approving bytes we never
            # decided on would be the unsafe answer.
            answer_body = contract.AUTHORIZATION_DECLINE_BODY if is_request else STORED_BODY
            log.warning("conflicting delivery for message %s: same identity, different body",
                        message_id, extra={"message_id": message_id})

    connection.execute(_INSERT_DELIVERY, dict(
        message_id=message_id, webhook_id=delivery.webhook_id,
        received_at=delivery.received_at, disposition=disposition, body_sha256=digest,
        conflict_body=body_text if disposition == Disposition.CONFLICT else None,
        webhook_timestamp=delivery.webhook_timestamp, source_ip=delivery.source.client_ip,
        peer_ip=delivery.source.peer_ip, verified_by=delivery.verified_by,
        headers=json.dumps(dict(delivery.headers), sort_keys=True),
        answer_status=answer_status,
    ))
    return Stored(answer_status, answer_body, disposition, message_id)


def _winner(session: Session, webhook_id: str, key: str) -> Row:
    columns = (StoredMessage.id, StoredMessage.body_sha256, StoredMessage.answer_status,
               StoredMessage.answer_body)
    row = session.execute(select(*columns).where(StoredMessage.webhook_id == webhook_id)).first()
    if row is None:
        row = session.execute(select(*columns).where(StoredMessage.business_key == key)).first()
    if row is None:
        # Only possible if the conflicting row vanished between INSERT and SELECT; FINCI retries.
        raise StorageUnavailable("conflicting message not found")
    return row


def record_rejection(database: Database, *, reason: str, status: int, source: Source,
                     received_at: dt.datetime, detail: str | None = None,
                     webhook_id: str | None = None) -> None:
    """Best effort: a refused delivery is refused whether or not the record can be written."""
    log.warning("webhook delivery refused: %s", reason,
                extra={"reason": reason, "status": status, "source_ip": source.client_ip})
    try:
        with database.transaction() as session:
            session.connection().execute(_INSERT_REJECTION, dict(
                received_at=received_at, reason=reason[:48], detail=(detail or None),
                http_status=status, source_ip=source.client_ip, peer_ip=source.peer_ip,
                webhook_id=redact_text(webhook_id) if webhook_id else None,
            ))
    except SQLAlchemyError as exc:
        log.error("could not record a refused delivery: %s", type(exc).__name__)
