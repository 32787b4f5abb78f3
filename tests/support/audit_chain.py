"""A long, valid audit chain written straight into the tables: rows hashed by the chain's own
functions and inserted in batches, with a signed checkpoint every ``checkpoint_every`` rows.

``record()`` writes one row per call under the head lock (about 1.5 ms a row on SQLite, more
on PostgreSQL); the tamper tests need 10,000 rows and ``bench/audit.py`` a million, so both
build their chain here. The rows are the kind of events the console writes (views of cards,
some with a source address or request id, details with non-ASCII text)."""

from __future__ import annotations

import datetime as dt

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import insert, update
from sqlalchemy.orm import Session

from console.audit.chain import canonical_json, hashed_fields, row_hash
from console.audit.checkpoint_format import sign_checkpoint
from console.audit.models import GENESIS_HASH, AuditCheckpoint, AuditEvent, AuditHead

START = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def write_chain(session: Session, signing_key: Ed25519PrivateKey, *, rows: int,
                checkpoint_every: int = 1_000, batch: int = 10_000,
                commit: bool = False) -> str:
    """Append ``rows`` events to an empty log; return the last row's hash. ``commit`` commits
    each batch (a million rows must not sit in one transaction's memory)."""
    prev, pending, checkpoints = GENESIS_HASH, [], []
    for seq in range(1, rows + 1):
        at = START + dt.timedelta(seconds=seq)
        fields = hashed_fields(
            seq=seq, occurred_at=at, actor_type="user", actor_id=f"user{seq % 17}",
            action="audit.log.view", target_type="card" if seq % 3 else None,
            target_id=f"c{seq}" if seq % 3 else None, outcome="success",
            source_ip="192.0.2.7" if seq % 2 else None,
            request_id=f"req-{seq}" if seq % 5 else None,
            details=canonical_json({"n": seq, "note": "ünïcode"}))
        digest = row_hash(prev, fields)
        pending.append({**fields, "occurred_at": at, "prev_hash": prev, "row_hash": digest})
        if seq % checkpoint_every == 0:
            signed_at = at + dt.timedelta(milliseconds=1)
            key_id, signature = sign_checkpoint(signing_key, seq=seq, hash=digest,
                                                signed_at=signed_at)
            checkpoints.append({"seq": seq, "hash": digest, "signed_at": signed_at,
                                "key_id": key_id, "signature": signature})
        prev = digest
        if len(pending) >= batch or seq == rows:
            session.execute(insert(AuditEvent.__table__), pending)
            if checkpoints:
                session.execute(insert(AuditCheckpoint.__table__), checkpoints)
            pending, checkpoints = [], []
            if commit:
                session.commit()
    if session.execute(update(AuditHead).values(seq=rows, row_hash=prev)).rowcount == 0:
        session.add(AuditHead(id=1, seq=rows, row_hash=prev))
    session.flush()
    if commit:
        session.commit()
    return prev
