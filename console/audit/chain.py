"""The hash chain: one function computes a row's hash, used by writer, verifier and exports."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False, default=str)


def timestamp_text(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def row_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    """sha256 over the previous hash and the row's canonical content (details as stored)."""
    content = canonical_json(fields)
    return hashlib.sha256(f"{prev_hash}\n{content}".encode()).hexdigest()


def hashed_fields(*, seq, occurred_at, actor_type, actor_id, action, target_type, target_id,
                  outcome, source_ip, request_id, details) -> dict[str, Any]:
    return {
        "seq": seq,
        "occurred_at": timestamp_text(occurred_at),
        "actor_type": actor_type,
        "actor_id": actor_id,
        "action": action,
        "target_type": target_type,
        "target_id": target_id,
        "outcome": outcome,
        "source_ip": source_ip,
        "request_id": request_id,
        "details": details,
    }


def fields_of(event) -> dict[str, Any]:
    return hashed_fields(
        seq=event.seq, occurred_at=event.occurred_at, actor_type=event.actor_type,
        actor_id=event.actor_id, action=event.action, target_type=event.target_type,
        target_id=event.target_id, outcome=event.outcome, source_ip=event.source_ip,
        request_id=event.request_id, details=event.details,
    )
