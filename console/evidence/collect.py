"""What the console's database says about one step: plain JSON-ready dicts for the pack and the
judgement.

Everything is read by the identifiers the step sent (webhook-ids, FINCI ids, the card's token),
so a busy console (the demo's steady traffic) does not leak into a step's evidence. Card numbers
appear only masked; stored headers are the ones the ingress kept (signature versions, not the
signatures).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import or_, select, tuple_
from sqlalchemy.orm import Session

from console.audit.models import AuditEvent
from console.cards.models import Card, CardStatusChange
from console.decisioning.models import DecisionRecord
from console.ingress.models import StoredMessage, WebhookDelivery
from console.ledger.models import Hold, LedgerAccount, LedgerEntry, LedgerJournal
from console.transactions import timeline
from console.transactions.models import TransactionMessage, TransactionPosting

# Processing is over for a message in these states (a parked one waits for review, not time).
SETTLED = frozenset({"processed", "dead", "parked"})


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _json(text: str | None) -> Any:
    try:
        return json.loads(text or "{}")
    except ValueError:
        return {}


def messages(session: Session, webhook_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Each stored message by webhook-id, with its deliveries as the ingress recorded them."""
    ids = list(dict.fromkeys(webhook_ids))
    if not ids:
        return {}
    found: dict[str, dict[str, Any]] = {}
    rows = session.scalars(select(StoredMessage).where(StoredMessage.webhook_id.in_(ids)))
    for row in rows:
        deliveries = session.scalars(select(WebhookDelivery).where(
            WebhookDelivery.message_id == row.id).order_by(WebhookDelivery.id)).all()
        found[row.webhook_id] = {
            "id": row.id, "webhook_id": row.webhook_id, "type": row.type,
            "finci_id": row.finci_id, "advice": row.advice, "token_id": row.token_id,
            "received_at": _iso(row.received_at), "answer_status": row.answer_status,
            "answer_body": _json(row.answer_body), "decision": row.decision,
            "decision_reason": row.decision_reason, "status": row.status,
            "attempts": row.attempts, "outcome": row.outcome, "last_error": row.last_error,
            "deliveries": [{
                "received_at": _iso(d.received_at), "disposition": d.disposition,
                "answer_status": d.answer_status, "verified_by": d.verified_by,
                "webhook_timestamp": d.webhook_timestamp, "source_ip": d.source_ip,
                "headers": _json(d.headers),
            } for d in deliveries],
        }
    return found


def decisions(session: Session, authorization_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    ids = list(dict.fromkeys(authorization_ids))
    rows = session.scalars(select(DecisionRecord).where(
        DecisionRecord.authorization_id.in_(ids))).all() if ids else []
    return {r.authorization_id: {
        "origin": r.origin, "mode": r.mode, "answer": r.answer, "reason": r.reason,
        "detail": r.detail, "default_used": r.default_used, "rule_trace": r.rule_trace,
        "latency_ms": r.latency_ms, "total_ms": r.total_ms, "amount": r.amount,
        "currency": r.currency, "received_at": _iso(r.received_at),
        "advice_response_code": r.advice_response_code, "advice_outcome": r.advice_outcome,
        "advice_message_id": r.advice_message_id, "hold_action": r.hold_action,
    } for r in rows}


def holds(session: Session, authorization_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    ids = list(dict.fromkeys(authorization_ids))
    rows = session.scalars(select(Hold).where(Hold.authorization_id.in_(ids))).all() if ids else []
    return {h.authorization_id: {"amount": h.amount, "currency": h.currency, "status": h.status}
            for h in rows}


def card(session: Session, token_id: str) -> dict[str, Any] | None:
    row = session.scalar(select(Card).where(Card.token_id == token_id))
    if row is None:
        return None
    account = session.get(LedgerAccount, row.account_id) if row.account_id else None
    changes = session.scalars(select(CardStatusChange).where(
        CardStatusChange.token_id == token_id).order_by(CardStatusChange.id)).all()
    return {
        "token_id": row.token_id, "masked_number": row.masked_number, "status": row.status,
        "stage": row.stage, "person_id": row.person_id, "currency": row.currency,
        "account": None if account is None else {
            "id": account.id, "kind": account.kind, "currency": account.currency,
            "posted_balance": account.posted_balance, "held_amount": account.held_amount},
        "status_changes": [{"from": c.from_status, "to": c.to_status, "stage": c.stage,
                            "source": c.source} for c in changes],
    }


def ledger_entries(session: Session, account_id: int | None) -> list[dict[str, Any]]:
    """Every posting on the card's own account, the opening funding included (kind ``funding``)."""
    if account_id is None:
        return []
    rows = session.execute(
        select(LedgerJournal, LedgerEntry).join(LedgerEntry, LedgerEntry.journal_id
                                                == LedgerJournal.id)
        .where(LedgerEntry.account_id == account_id).order_by(LedgerJournal.id)).all()
    return [{"journal_id": j.id, "kind": j.kind, "reference": j.reference,
             "amount": e.amount, "currency": e.currency, "posted_at": _iso(j.posted_at),
             "posted_by": j.posted_by} for j, e in rows]


def transactions(session: Session, message_ids: Iterable[int]) -> list[dict[str, Any]]:
    """The timeline (``flask trace``'s) of each transaction the step's messages belong to."""
    ids = list(dict.fromkeys(message_ids))
    if not ids:
        return []
    transaction_ids = sorted(set(session.scalars(select(TransactionMessage.transaction_id).where(
        TransactionMessage.message_id.in_(ids)))))
    built = []
    for transaction_id in transaction_ids:
        found = timeline.build(session, transaction_id)
        if found is None:  # pragma: no cover - linked rows are never deleted
            continue
        document = found.as_dict()
        document["postings"] = [{
            "kind": p.kind, "finci_id": p.finci_id, "amount": p.amount, "currency": p.currency,
            "status": p.status, "reason": p.reason, "detail": p.detail,
            "journal_id": p.journal_id, "attempts": p.attempts, "posted_at": _iso(p.posted_at),
        } for p in session.scalars(select(TransactionPosting).where(
            TransactionPosting.transaction_id == transaction_id).order_by(TransactionPosting.id))]
        built.append(document)
    return built


def audit_events(session: Session, *, token_ids: Iterable[str], message_ids: Iterable[int],
                 transaction_ids: Iterable[int], run_id: str | None) -> list[dict[str, Any]]:
    targets = [("card", t) for t in token_ids]
    targets += [("message", str(m)) for m in message_ids]
    targets += [("transaction", str(t)) for t in transaction_ids]
    if run_id is not None:
        targets.append(("evidence_run", run_id))
    rows = session.scalars(select(AuditEvent).where(or_(
        tuple_(AuditEvent.target_type, AuditEvent.target_id).in_(targets)))
        .order_by(AuditEvent.seq).limit(500))
    return [{"seq": e.seq, "occurred_at": _iso(e.occurred_at), "actor": f"{e.actor_type} "
             f"{e.actor_id}", "action": e.action, "target": f"{e.target_type}:{e.target_id}",
             "outcome": e.outcome, "details": _json(e.details), "row_hash": e.row_hash}
            for e in rows]


def settled(session: Session, webhook_ids: Iterable[str]) -> tuple[bool, list[str]]:
    """Whether every message is stored and done processing; the webhook-ids still waiting."""
    ids = list(dict.fromkeys(webhook_ids))
    if not ids:
        return True, []
    states = dict(session.execute(select(StoredMessage.webhook_id, StoredMessage.status).where(
        StoredMessage.webhook_id.in_(ids))).all())
    waiting = [i for i in ids if states.get(i) not in SETTLED]
    if waiting:
        return False, waiting
    # A presentment parked for its advice is processed as a message but not yet posted.
    message_ids = list(session.scalars(select(StoredMessage.id).where(
        StoredMessage.webhook_id.in_(ids))))
    parked = session.scalars(select(TransactionPosting.message_id).where(
        TransactionPosting.message_id.in_(message_ids),
        TransactionPosting.status == "parked")).all()
    if not parked:
        return True, []
    return False, list(session.scalars(select(StoredMessage.webhook_id).where(
        StoredMessage.id.in_(parked))))
