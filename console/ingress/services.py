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
3. Every accepted delivery appends one ``webhook_delivery`` row, then COMMIT. On PostgreSQL
   the first delivery is inserted by the same statement as its message (a data-modifying CTE),
   so the common case is one statement and one COMMIT.

Authorization requests are handed to the decisioning port after step 1 and before COMMIT, so the
answer is stored with the message and decisioning never runs twice for one message.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from sqlalchemy import (
    Connection,
    Row,
    bindparam,
    insert,
    literal,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from console.counters import counter_upserts, minute_of
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
from console.security.redaction import Keep, redact_identifier, redact_json

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
    arrived: float | None = None  # time.monotonic() when the request reached us


@dataclass(frozen=True)
class Stored:
    status: int
    body: bytes
    disposition: str
    message_id: int


def business_key(message: WebhookMessage, identity_key: bytes) -> str:
    """``type|request|id``, ``type|advice|id`` or ``type|-|id``: unambiguous because ``type``
    cannot contain ``|`` and the id comes last (B.2: a request and its advice share ``id``).

    Stored and shown, so a card number in it is masked like every identifier column. Masking
    could make two identities equal (ids with the same first six and last four digits) and turn
    the second message into a conflict that is never applied; a keyed fingerprint of the
    original (``~`` and 16 base32 characters, HMAC with ``identity_key``) keeps them apart
    without storing it. Only masked keys carry one: FINCI's own ids stay as typed."""
    message_type, finci_id, advice = message.business_key
    tag = "-" if advice is None else ("advice" if advice else "request")
    key = f"{message_type}|{tag}|{finci_id}"
    masked = redact_identifier(key, own_ids(message))
    if masked == key:
        return key
    fingerprint = hmac.new(identity_key, key.encode(), hashlib.sha256).digest()[:10]
    return f"{masked}~{base64.b32encode(fingerprint).decode().lower()}"


def own_ids(message: WebhookMessage) -> Keep:
    """The message's own FINCI ids, which masking keeps as typed (``contract.is_finci_id``):
    stored, searched and linked as FINCI sent them, even the one in ten that passes Luhn."""
    ids = message.finci_ids
    return ids.__contains__ if ids else None


def masked_body(body: bytes, message: WebhookMessage) -> tuple[str, bool]:
    """The body to store: the original text with card numbers masked, still valid JSON. Only
    signature verification sees the original bytes; they are never stored unmasked."""
    text = body.decode("utf-8")  # parse_message has already proved it is UTF-8
    masked = redact_json(text, message.raw, own_ids(message))
    return masked, masked != text


_MESSAGES = StoredMessage.__table__
_DELIVERIES = WebhookDelivery.__table__
_REJECTIONS = WebhookRejection.__table__
# Columns written at ingest; the processing columns left out start NULL.
_MESSAGE_FIELDS = ("webhook_id", "business_key", "type", "known_type", "finci_id", "advice",
                   "token_id", "finci_created_at", "webhook_timestamp", "received_at", "body",
                   "body_sha256", "body_masked", "source_ip", "verified_by", "answer_status",
                   "answer_body", "status", "attempts", "next_attempt_at")
_DELIVERY_FIELDS = ("webhook_id", "received_at", "disposition", "body_sha256",
                    "webhook_timestamp", "source_ip", "peer_ip", "verified_by", "headers",
                    "answer_status")
_ACCEPTED = int(contract.IngressAnswer.ACCEPTED)
_PG_DIALECT = postgresql.psycopg.dialect()
# What every new message and its first delivery start as: written into the hot statement as SQL
# literals rather than sent as parameters with every request.
_FIRST_DELIVERY_CONSTANTS = {"answer_status": _ACCEPTED, "status": MessageStatus.PENDING,
                             "attempts": 0, "disposition": Disposition.FIRST}


def _message_values():
    return {name: bindparam(name, type_=_MESSAGES.c[name].type) for name in _MESSAGE_FIELDS}


def _insert_first_delivery_pg():
    """PostgreSQL: the message and its first delivery in one statement (one round trip on the
    hot path). Returns a row only if this delivery created the message.

    The delivery repeats the message's values under the same parameter names (the driver sends
    each once), ``next_attempt_at`` starts at ``received_at``, and the constants are literals."""
    def value(table, name):
        if name in _FIRST_DELIVERY_CONSTANTS:
            constant = literal(_FIRST_DELIVERY_CONSTANTS[name], table.c[name].type)
            return literal_column(str(constant.compile(
                dialect=_PG_DIALECT, compile_kwargs={"literal_binds": True})), table.c[name].type)
        if name == "next_attempt_at":
            name = "received_at"
        # psycopg's dialect renders every parameter with an explicit ::type, so the SELECT
        # list of parameters is typed without CASTs.
        return bindparam(name, type_=table.c[name].type)

    new = (postgresql.insert(_MESSAGES)
           .values({name: value(_MESSAGES, name) for name in _MESSAGE_FIELDS})
           .on_conflict_do_nothing().returning(_MESSAGES.c.id).cte("new_message"))
    return (insert(_DELIVERIES)
            .from_select(["message_id", *_DELIVERY_FIELDS],
                         select(new.c.id, *(value(_DELIVERIES, name) for name in _DELIVERY_FIELDS)))
            .returning(_DELIVERIES.c.message_id))


# The hot path's one statement, compiled once from the table metadata (so it cannot drift from
# the models) and executed on the driver's cursor: SQLAlchemy's per-execution parameter
# processing and result wrapping are skipped (measured: about a third of the storing cost).
# Every value is already of the driver's type: text, int, bool, or an aware UTC datetime.
_INSERT_FIRST_DELIVERY_PG = str(_insert_first_delivery_pg().compile(dialect=_PG_DIALECT))
_INSERT_MESSAGE_SQLITE = (sqlite.insert(_MESSAGES).values(_message_values())
                          .on_conflict_do_nothing().returning(_MESSAGES.c.id))
_INSERT_DELIVERY = insert(_DELIVERIES)


# One refusal added to its (minute, source, reason) counter, atomically (console.counters).
_UPSERT_REJECTION = counter_upserts(
    _REJECTIONS, keys=("minute", "source_ip", "reason"),
    columns=("minute", "source_ip", "reason", "count", "first_seen_at", "last_seen_at",
             "http_status", "detail", "peer_ip", "webhook_id"),
    samples=("detail", "peer_ip", "webhook_id"))
_RECORD_ANSWER = (update(_MESSAGES).where(_MESSAGES.c.id == bindparam("message_id"))
                  .values(answer_body=bindparam("answer_body"),
                          decision=bindparam("decision"),
                          decision_reason=bindparam("decision_reason")))
_WINNER_COLUMNS = (_MESSAGES.c.id, _MESSAGES.c.body_sha256, _MESSAGES.c.answer_status,
                   _MESSAGES.c.answer_body)
_WINNER_BY_ID = select(*_WINNER_COLUMNS).where(_MESSAGES.c.webhook_id == bindparam("webhook_id"))
_WINNER_BY_KEY = select(*_WINNER_COLUMNS).where(_MESSAGES.c.business_key == bindparam("key"))


@contextmanager
def _core_transaction(database: Database) -> Iterator[Connection]:
    """A Core transaction without an ORM Session (measurably cheaper on the hot path). The test
    harness binds the sessionmaker to one Connection whose units of work are SAVEPOINTs; the
    same is done here so tests stay isolated."""
    bind = database.sessionmaker.kw.get("bind") or database.engine
    if isinstance(bind, Connection):
        with bind.begin_nested():
            yield bind
    else:
        with bind.begin() as connection:
            yield connection


def store(database: Database, delivery: Delivery, message: WebhookMessage,
          settings: IngressSettings, *, identity_key: bytes) -> Stored:
    """``identity_key``: the secret for business-key fingerprints (see ``business_key``)."""
    digest = hashlib.sha256(delivery.body).hexdigest()
    key = business_key(message, identity_key)
    try:
        if message.is_authorization_request:
            # Decisioning works with an ORM Session (and may write its own records in it).
            with database.transaction() as session:
                return _store(session.connection(), delivery, message, settings, digest, key,
                              session=session)
        with _core_transaction(database) as connection:
            return _store(connection, delivery, message, settings, digest, key)
    except (SQLAlchemyError, psycopg.Error) as exc:
        raise StorageUnavailable(type(exc).__name__) from exc


def _store(connection: Connection, delivery: Delivery, message: WebhookMessage,
           settings: IngressSettings, digest: str, key: str, *,
           session: Session | None = None) -> Stored:
    body_text, was_masked = masked_body(delivery.body, message)
    is_request = session is not None
    accepted = int(contract.IngressAnswer.ACCEPTED)
    safe = decisioning_port.Answer.safe_default(settings.safe_default.value, "pending")
    # Identifier columns are shown to every viewer: card numbers in them are masked here, once.
    webhook_id = redact_identifier(delivery.webhook_id)
    message_row = {
        "webhook_id": webhook_id, "business_key": key, "type": redact_identifier(message.type),
        "known_type": message.known_type,
        "finci_id": redact_identifier(message.id, own_ids(message)),
        "advice": message.advice if message.type == contract.MessageType.AUTHORIZATION else None,
        "token_id": redact_identifier(message.token_id), "finci_created_at": message.created_at,
        "webhook_timestamp": delivery.webhook_timestamp, "received_at": delivery.received_at,
        "body": body_text, "body_sha256": digest, "body_masked": was_masked,
        "source_ip": delivery.source.client_ip, "verified_by": delivery.verified_by,
        "answer_status": accepted,
        "answer_body": (safe.body if is_request else STORED_BODY).decode(),
        "status": MessageStatus.PENDING, "attempts": 0,
        "next_attempt_at": delivery.received_at,
    }
    delivery_row = {
        "webhook_id": webhook_id, "received_at": delivery.received_at,
        "disposition": Disposition.FIRST, "body_sha256": digest,
        "webhook_timestamp": delivery.webhook_timestamp, "source_ip": delivery.source.client_ip,
        "peer_ip": delivery.source.peer_ip, "verified_by": delivery.verified_by,
        "headers": json.dumps(delivery.headers), "answer_status": accepted,
    }
    delivered = False
    if connection.dialect.name == "postgresql":
        message_row.update(peer_ip=delivery_row["peer_ip"], headers=delivery_row["headers"])
        row = _execute_on_driver(connection, _INSERT_FIRST_DELIVERY_PG, message_row)
        message_id = row[0] if row else None
        delivered = message_id is not None
    else:
        message_id = connection.execute(_INSERT_MESSAGE_SQLITE, message_row).scalar()

    if message_id is not None:
        disposition = Disposition.FIRST
        answer_status, answer_body = accepted, STORED_BODY
        if session is not None:
            answer = decisioning_port.decide(session, message,
                                             safe_default=settings.safe_default.value,
                                             arrived=delivery.arrived)
            answer_body = answer.body
            connection.execute(_RECORD_ANSWER, {
                "message_id": message_id, "answer_body": answer_body.decode(),
                "decision": answer.status, "decision_reason": answer.reason})
    else:
        winner = _winner(connection, webhook_id, key)
        message_id = winner.id
        if winner.body_sha256 == digest:
            disposition = Disposition.DUPLICATE
            answer_status, answer_body = winner.answer_status, winner.answer_body.encode()
        else:
            disposition = Disposition.CONFLICT
            answer_status = accepted
            # A request we cannot match to what we decided is declined: approving bytes we never
            # decided on would be the unsafe answer.
            answer_body = contract.AUTHORIZATION_DECLINE_BODY if is_request else STORED_BODY
            log.warning("conflicting delivery for message %s: same identity, different body",
                        message_id, extra={"message_id": message_id})

    if not delivered:
        connection.execute(_INSERT_DELIVERY, {
            **delivery_row, "message_id": message_id, "disposition": disposition,
            "conflict_body": body_text if disposition == Disposition.CONFLICT else None,
            "answer_status": answer_status})
    return Stored(answer_status, answer_body, disposition, message_id)


def _execute_on_driver(connection: Connection, sql: str, params: dict) -> tuple | None:
    """One statement straight on psycopg's cursor, first row or None: SQLAlchemy's execution
    context and result wrapping cost about a tenth of the whole ingress request. A driver error
    becomes StorageUnavailable in ``store``; if the connection died, the transaction's rollback
    fails through SQLAlchemy, which invalidates it (tests/ingress/test_connection_loss.py)."""
    with connection.connection.driver_connection.cursor() as cursor:
        return cursor.execute(sql, params).fetchone()


def _winner(connection: Connection, webhook_id: str, key: str) -> Row:
    row = connection.execute(_WINNER_BY_ID, {"webhook_id": webhook_id}).first()
    if row is None:
        row = connection.execute(_WINNER_BY_KEY, {"key": key}).first()
    if row is None:
        # Only possible if the conflicting row vanished between INSERT and SELECT; FINCI retries.
        raise StorageUnavailable("conflicting message not found")
    return row


def record_rejection(database: Database, *, reason: str, status: int, source: Source,
                     received_at: dt.datetime, detail: str | None = None,
                     webhook_id: str | None = None) -> None:
    """Best effort: a refused delivery is refused whether or not the record can be written.
    Counted, not appended (``WebhookRejection``): one upsert, so unauthenticated traffic cannot
    grow the table by a row per request."""
    log.warning("webhook delivery refused: %s", reason,
                extra={"reason": reason, "status": status, "source_ip": source.client_ip})
    try:
        with _core_transaction(database) as connection:
            connection.execute(_UPSERT_REJECTION[connection.dialect.name], dict(
                minute=minute_of(received_at), source_ip=source.client_ip or "",
                reason=reason[:48], count=1, first_seen_at=received_at,
                last_seen_at=received_at, http_status=status,
                detail=redact_identifier(detail or None), peer_ip=source.peer_ip,
                webhook_id=redact_identifier(webhook_id or None),
            ))
    except SQLAlchemyError as exc:
        log.error("could not record a refused delivery: %s", type(exc).__name__)
