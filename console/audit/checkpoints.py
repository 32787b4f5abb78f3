"""Signed checkpoints of the audit chain: the ``audit.checkpoint`` job signs the newest row, and
``flask --app wsgi audit verify`` checks every checkpoint against the chain.

The hash chain alone shows that rows were changed, but someone who can write to the database
could recompute every hash and the chain would verify again. A checkpoint is the chain hash at a
row, signed with the Ed25519 key that signs exports (``AUDIT_EXPORT_SIGNING_KEY``), which the
database never holds: a rewritten chain no longer matches the signed hashes.

Writing a checkpoint writes no audit row (that row would need a checkpoint of its own, forever);
the job's status records each run.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from console.audit import checkpoint_files
from console.audit.chain import GENESIS_HASH, timestamp_text, verify_rows
from console.audit.checkpoint_format import checkpoint_problem, sign_checkpoint
from console.audit.export_format import key_fingerprint
from console.audit.models import AuditCheckpoint, AuditEvent
from console.audit.retention import verify_archives
from console.audit.settings import KEY_VARIABLE
from console.audit.verify import archived_through, iter_rows, verify_chain
from console.db import utcnow

NO_KEY = "not checked (no key)"
# The job signs hourly: events older than this past the newest checkpoint mean it is not
# running (or has no key), or that checkpoints were deleted. Reported, not a verify failure.
UNCOVERED_AFTER = dt.timedelta(hours=2)


class CheckpointRefused(RuntimeError):
    """The rows since the last checkpoint do not verify: signing them would vouch for them."""


def _latest(session: Session):
    return session.execute(select(AuditCheckpoint.seq, AuditCheckpoint.hash)
                           .order_by(AuditCheckpoint.seq.desc()).limit(1)).first()


def sign_newest(session: Session, signing_key: Ed25519PrivateKey | None,
                now: dt.datetime, directory: str | None = None) -> str:
    """Checkpoint the newest audit row if it is newer than the last checkpoint; a summary.
    With ``directory`` (AUDIT_CHECKPOINT_DIR), every checkpoint not yet kept there is written
    there too, before the new one reaches the database: a failed write fails the run."""
    if signing_key is None:
        return f"checkpoints off: {KEY_VARIABLE} is not set"
    summary = _sign_newest(session, signing_key, now)
    if directory is None:
        return summary
    kept = keep_outside(session, directory)
    return summary + (f"; {kept} kept in {directory}" if kept else "")


def keep_outside(session: Session, directory: str) -> int:
    """Write the checkpoints newer than the newest file in ``directory``; how many."""
    kept = [int(m.group(1)) for m in map(checkpoint_files.NAME.fullmatch,
                                         _listing(directory)) if m]
    written = 0
    for checkpoint in session.scalars(select(AuditCheckpoint)
                                      .where(AuditCheckpoint.seq > max(kept, default=0))
                                      .order_by(AuditCheckpoint.seq)):
        checkpoint_files.write(directory, checkpoint)
        written += 1
    return written


def _listing(directory: str) -> list[str]:
    try:
        return os.listdir(directory)
    except OSError as error:
        raise checkpoint_files.CheckpointFileError(
            f"cannot read {directory}: {error.strerror or error}") from None


def _sign_newest(session: Session, signing_key: Ed25519PrivateKey, now: dt.datetime) -> str:
    newest = session.scalar(select(func.max(AuditEvent.seq)))
    last = _latest(session)
    if newest is None or (last is not None and newest <= last.seq):
        return ("no new audit rows since checkpoint #" + str(last.seq) if last is not None
                else "no audit rows yet")
    # Only vouch for rows that link to the last signed hash (the chain walk, from there).
    first, anchor = (last.seq + 1, last.hash) if last is not None else (1, GENESIS_HASH)
    report = verify_rows(iter_rows(session, first=first, last=newest), first_seq=first,
                         anchor=anchor)
    if not report.ok:
        raise CheckpointRefused(f"not signing row {newest}: {report.problem} "
                                "(run `flask --app wsgi audit verify`)")
    key_id, signature = sign_checkpoint(signing_key, seq=newest, hash=report.head_hash,
                                        signed_at=now)
    session.add(AuditCheckpoint(seq=newest, hash=report.head_hash, signed_at=now,
                                key_id=key_id, signature=signature))
    session.flush()
    return f"signed checkpoint at row #{newest} ({report.rows} new rows, key {key_id})"


def checkpoint_job(session: Session, _actor, now: dt.datetime) -> str:
    """The scheduler's ``audit.checkpoint`` job (runs in the app context, for its settings)."""
    audit = current_app.extensions["settings"].audit
    return sign_newest(session, audit.export_signing_key, now, audit.checkpoint_dir)


@dataclass(frozen=True)
class CheckpointReport:
    # "verified", "none" (no checkpoints yet), NO_KEY or "failed".
    status: str
    count: int
    checked: int = 0
    latest_seq: int | None = None
    latest_signed_at: dt.datetime | None = None
    key_id: str | None = None
    seq: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "count": self.count, "checked": self.checked,
                "latest_seq": self.latest_seq,
                "latest_signed_at": (timestamp_text(self.latest_signed_at)
                                     if self.latest_signed_at else None),
                "key_id": self.key_id, "seq": self.seq, "problem": self.problem}


def _with_chain_hashes(session: Session, batch: int, after: int) -> Iterator:
    """Checkpoints after ``after`` in seq order, each with the chain's row_hash at its seq
    (None: no row)."""
    while True:
        chunk = session.execute(
            select(AuditCheckpoint.__table__, AuditEvent.row_hash.label("chain_hash"))
            .outerjoin(AuditEvent, AuditEvent.seq == AuditCheckpoint.seq)
            .where(AuditCheckpoint.seq > after).order_by(AuditCheckpoint.seq).limit(batch)
        ).all()
        if not chunk:
            return
        yield from chunk
        after = chunk[-1].seq


def verify_checkpoints(session: Session, public_key: Ed25519PublicKey | None,
                       batch: int = 1000) -> CheckpointReport:
    """Every checkpoint's signature under ``public_key`` and its hash against the chain row."""
    count, latest_seq, latest_at = session.execute(
        select(func.count(), func.max(AuditCheckpoint.seq), func.max(AuditCheckpoint.signed_at))
    ).one()
    if public_key is None:
        return CheckpointReport(NO_KEY, count, 0, latest_seq, latest_at)
    key_id = key_fingerprint(public_key)
    checked = 0
    # Checkpoints of archived rows travel in their archive bundle and are checked there.
    for checkpoint in _with_chain_hashes(session, batch, archived_through(session)[0]):
        problem = checkpoint_problem(public_key, checkpoint, checkpoint.chain_hash)
        if problem:
            return CheckpointReport("failed", count, checked, latest_seq, latest_at, key_id,
                                    checkpoint.seq, problem)
        checked += 1
    return CheckpointReport("verified" if checked else "none", count, checked, latest_seq,
                            latest_at, key_id)


def uncovered(session: Session, now: dt.datetime) -> dict[str, Any] | None:
    """Events older than ``UNCOVERED_AFTER`` that no checkpoint covers yet, or None."""
    after = session.scalar(select(func.coalesce(func.max(AuditCheckpoint.seq), 0)))
    count, first, last = session.execute(
        select(func.count(), func.min(AuditEvent.seq), func.max(AuditEvent.seq))
        .where(AuditEvent.seq > after, AuditEvent.occurred_at < now - UNCOVERED_AFTER)).one()
    if not count:
        return None
    hours = UNCOVERED_AFTER.total_seconds() / 3600
    return {"count": count, "first_seq": first, "last_seq": last,
            "warning": f"{count} events (#{first} to #{last}) older than {hours:.0f} h are not "
                       "covered by a signed checkpoint: is the scheduler running with the "
                       "key, or were checkpoints deleted?"}


def verify_log(session: Session, public_key: Ed25519PublicKey | None,
               now: dt.datetime | None = None, checkpoint_dir: str | None = None,
               archive_dir: str | None = None) -> dict[str, Any]:
    """The chain walk and the checkpoints: the chain report's keys (ok, problem, broken_seq
    naming the first problem of any) plus ``checkpoints`` (with ``uncovered``: old events
    past the newest checkpoint, a warning rather than a failure) and, with ``checkpoint_dir``,
    ``checkpoint_files``: the checkpoints kept outside the database, checked the same way;
    ``archives``: retention's archives against their bundles in ``archive_dir``."""
    chain = verify_chain(session)
    checkpoints = verify_checkpoints(session, public_key)
    result = chain.as_dict() | {"checkpoints": checkpoints.as_dict()
                                | {"uncovered": uncovered(session, now or utcnow())},
                                "checkpoint_files": None}
    archives = verify_archives(session, public_key, archive_dir, no_key=NO_KEY)
    result["archives"] = archives.as_dict()
    failures = [report for report in (archives, checkpoints) if not report.ok]
    if checkpoint_dir is not None:
        files = checkpoint_files.verify_files(
            checkpoint_dir, public_key,
            lambda seq: session.scalar(select(AuditEvent.row_hash).where(AuditEvent.seq == seq)),
            no_key=NO_KEY, after=archived_through(session)[0])
        result["checkpoint_files"] = files.as_dict()
        failures += [] if files.ok else [files]
    if chain.ok and failures:
        result.update(ok=False, broken_seq=failures[0].seq, problem=failures[0].problem)
    return result


def describe(result: dict[str, Any]) -> str:
    """Two lines for people: the chain (or the first problem) and the checkpoints."""
    if result["ok"]:
        chain = f"audit chain intact: {result['rows']} events, head #{result['head_seq'] or 0}"
    else:
        chain = f"audit chain BROKEN at event #{result['broken_seq']}: {result['problem']}"
    cp = result["checkpoints"]
    if cp["status"] == NO_KEY:
        line = (f"checkpoints: {NO_KEY}: {cp['count']} stored; set {KEY_VARIABLE} or pass "
                "--public-key")
    elif cp["status"] == "none":
        line = "checkpoints: none yet (the audit.checkpoint job signs the newest row hourly)"
    elif cp["status"] == "verified":
        line = (f"checkpoints: {cp['checked']} verified, latest #{cp['latest_seq']} signed "
                f"{cp['latest_signed_at']} (key {cp['key_id']})")
    else:
        line = f"checkpoints: FAILED after {cp['checked']} verified: {cp['problem']}"
    if cp["uncovered"]:
        line += f"\nWARNING: {cp['uncovered']['warning']}"
    archives = result.get("archives") or {"count": 0}
    if archives["count"]:
        line += "\n" + (f"archives: {archives['checked']} verified" if archives["status"] ==
                        "verified" else f"archives: {archives['status']}"
                        + (f": {archives['problem']}" if archives["problem"] else ""))
    files = result.get("checkpoint_files")
    if files is not None:
        line += "\n" + _describe_files(files)
    return f"{chain}\n{line}"


def _describe_files(files: dict[str, Any]) -> str:
    where = f"checkpoint files in {files['directory']}"
    if files["status"] == "verified":
        return f"{where}: {files['checked']} verified, latest #{files['latest_seq']}"
    if files["status"] == "none":
        return f"{where}: none yet"
    if files["status"] == NO_KEY:
        return f"{where}: {NO_KEY}: {files['count']} kept"
    return f"{where}: FAILED after {files['checked']} verified: {files['problem']}"
