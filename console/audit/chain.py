"""The hash chain: one function computes a row's hash and one walk checks a run of rows; the
writer, the database verifier and the offline export verifier all use them.

Only the standard library here: ``console.audit.offline`` (the auditors' verifier) imports this
module without a database or an application.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import Any

# The prev_hash of row 1.
GENESIS_HASH = "0" * 64


# One encoder for every call: ``json.dumps`` with options builds a new one each time, which
# was a fifth of the cost of hashing a row (bench/audit.py).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                              allow_nan=False, default=str)


def canonical_json(value: Any) -> str:
    return _CANONICAL.encode(value)


def flat_canonical_json(fields: dict[str, Any]) -> str:
    """``canonical_json`` of a dict of text, whole numbers and nulls (a row's hashed fields),
    written directly: twice as fast, and the same text. Anything else takes the encoder."""
    parts = []
    for key in sorted(fields):
        value = fields[key]
        if value is None:
            text = "null"
        elif type(value) is str:
            text = encode_basestring(value)
        elif type(value) is int:
            text = str(value)
        else:
            return canonical_json(fields)
        parts.append(f"{encode_basestring(key)}:{text}")
    return "{" + ",".join(parts) + "}"


def timestamp_text(moment: dt.datetime) -> str:
    """``2026-11-27T09:30:00.000000Z``: always microseconds, always UTC, a four-digit year.
    (``isoformat`` writes the same text as ``strftime("%Y-%m-%dT%H:%M:%S.%fZ")`` at a
    third of the cost.)"""
    return moment.astimezone(dt.UTC).replace(tzinfo=None).isoformat(
        timespec="microseconds") + "Z"


def row_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    """sha256 over the previous hash and the row's canonical content (details as stored)."""
    content = flat_canonical_json(fields)
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
    """``hashed_fields`` of a row: the same dict, built directly (it runs once per row)."""
    return {
        "seq": event.seq,
        "occurred_at": timestamp_text(event.occurred_at),
        "actor_type": event.actor_type,
        "actor_id": event.actor_id,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "outcome": event.outcome,
        "source_ip": event.source_ip,
        "request_id": event.request_id,
        "details": event.details,
    }


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    rows: int
    head_seq: int | None
    head_hash: str | None
    broken_seq: int | None = None
    problem: str | None = None

    def as_dict(self) -> dict:
        return {
            "ok": self.ok, "rows": self.rows, "head_seq": self.head_seq,
            "head_hash": self.head_hash, "broken_seq": self.broken_seq, "problem": self.problem,
        }


def verify_rows(rows: Iterable, *, first_seq: int = 1, anchor: str = GENESIS_HASH) -> ChainReport:
    """Verify any ordered iterable of rows with the audit columns (database rows or an export).

    A whole chain starts at row 1 from the genesis hash; an export starts at its first row,
    anchored on that row's recorded prev_hash (which the export's signed manifest vouches for).
    """
    expected_seq, prev, count, last = first_seq, anchor, 0, None
    for event in rows:
        count += 1
        if event.seq != expected_seq:
            if event.seq > expected_seq:
                problem = f"row {expected_seq} is missing (next row found is {event.seq})"
                return ChainReport(False, count, last, prev, expected_seq, problem)
            problem = f"row {event.seq} appears out of order after row {expected_seq - 1}"
            return ChainReport(False, count, last, prev, event.seq, problem)
        if event.prev_hash != prev:
            problem = (f"row {event.seq} does not link to row {event.seq - 1} "
                       "(a row was inserted, removed or moved here)")
            return ChainReport(False, count, last, prev, event.seq, problem)
        if row_hash(prev, fields_of(event)) != event.row_hash:
            problem = f"row {event.seq} was changed after it was written (hash mismatch)"
            return ChainReport(False, count, last, prev, event.seq, problem)
        prev, last, expected_seq = event.row_hash, event.seq, expected_seq + 1
    return ChainReport(True, count, last, prev if last else None)
