"""Retention: audit rows older than ``AUDIT_RETENTION_MONTHS`` move to signed archive bundles in
``AUDIT_ARCHIVE_DIR``, and are removed from the table only once the bundle is on disk and
verifies. Nothing is ever dropped silently: without a directory or a signing key retention is
off, and any doubt stops the run with the rows in place.

One run (the daily ``audit.retention`` job, or ``flask --app wsgi audit archive``):

1. The range is the next rows after the newest archive, up to the last row older than the
   cutoff, never past the newest signed checkpoint (so what is archived was vouched for before
   it left), at most ``MAX_ROWS_PER_RUN`` rows.
2. The bundle is an ordinary export of that range (console.audit.export: events, checkpoints,
   signed manifest), so ``python -m console.audit.offline`` verifies it like any export. It must
   start from the hash the previous archive ended on.
3. It is written once (temporary name, fsync, link) and verified again from disk.
4. In the run's one transaction: an ``audit_archive`` row records range, hashes and file hash;
   the rows are deleted (the database allows DELETE only at or below an archive's last seq); an
   ``audit.log.archive`` event records it. The chain's verification then starts from the
   archive's last hash, so archives plus the remaining log verify as one chain.

:func:`verify_archives` checks every archive row against its bundle (present, same sha256,
signature, same range and hashes) and that archives follow each other without a gap.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from console.audit.actions import AuditAction
from console.audit.chain import GENESIS_HASH
from console.audit.export import ExportWindow, export_log
from console.audit.export_format import MalformedExport
from console.audit.models import AuditArchive, AuditCheckpoint, AuditEvent
from console.audit.offline import verify_export
from console.audit.services import Actor, Target, record
from console.audit.settings import AuditSettings
from console.audit.verify import archived_through
from console.audit.write_once import DifferentFileExists, sha256_of, write_once
from console.db import utcnow

MAX_ROWS_PER_RUN = 1_000_000
_CHUNK = 1 << 20


class RetentionRefused(RuntimeError):
    """The run stopped with every row still in place; the message says why."""


def months_before(at: dt.datetime, months: int) -> dt.datetime:
    """``at`` minus whole calendar months (the 31st becomes the month's last day)."""
    index = at.year * 12 + at.month - 1 - months
    year, month = divmod(index, 12)
    month += 1
    next_month = dt.date(year + (month == 12), month % 12 + 1, 1)
    last_day = (next_month - dt.timedelta(days=1)).day
    return at.replace(year=year, month=month, day=min(at.day, last_day))


def archive_name(first: int, last: int) -> str:
    return f"audit-archive-{first:012d}-{last:012d}.zip"


@dataclass(frozen=True)
class ArchiveRun:
    summary: str
    archive: AuditArchive | None = None

    def as_dict(self) -> dict[str, Any]:
        a = self.archive
        return {"summary": self.summary, "archive": None if a is None else {
            "first_seq": a.first_seq, "last_seq": a.last_seq, "count": a.count,
            "file": a.file_name, "file_sha256": a.file_sha256, "key_id": a.key_id}}


def archive_due(session: Session, actor: Actor, settings: AuditSettings,
                now: dt.datetime | None = None, *,
                max_rows: int = MAX_ROWS_PER_RUN) -> ArchiveRun:
    """Archive the next due range (see the module docstring), in the caller's transaction."""
    now = now or utcnow()
    key, directory = settings.export_signing_key, settings.archive_dir
    if key is None or directory is None:
        return ArchiveRun("retention off: set AUDIT_ARCHIVE_DIR and AUDIT_EXPORT_SIGNING_KEY "
                          "(nothing is removed without a signed archive)")
    cutoff = months_before(now, settings.retention_months)
    archived, anchor = archived_through(session)
    first = archived + 1
    due = session.scalar(select(func.max(AuditEvent.seq)).where(
        AuditEvent.seq >= first, AuditEvent.occurred_at < cutoff))
    if due is None:
        return ArchiveRun(f"nothing older than {cutoff:%Y-%m-%d} "
                          f"({settings.retention_months} months) to archive")
    vouched = session.scalar(select(func.max(AuditCheckpoint.seq)).where(
        AuditCheckpoint.seq >= first))
    if vouched is None:
        return ArchiveRun(f"waiting for a signed checkpoint at or after row {first} (the "
                          "audit.checkpoint job) before archiving rows up to "
                          f"{due}")
    last = min(due, vouched, first + max_rows - 1)

    export = export_log(session, actor=actor, signing_key=key, window=ExportWindow(),
                        max_rows=max_rows, at=now, bounds=(first, last))
    try:
        manifest = export.manifest
        if manifest["anchor_prev_hash"] != anchor or manifest["first_seq"] != first:
            raise RetentionRefused(f"rows from {first} do not start from the hash the last "
                                   f"archive ended on: run `flask --app wsgi audit verify`")
        name = archive_name(first, last)
        try:
            path = write_once(directory, name, iter(lambda: export.file.read(_CHUNK), b""))
        except DifferentFileExists:
            raise RetentionRefused(f"{Path(directory) / name} already exists with other "
                                   "content; move it aside after checking it") from None
        except OSError as error:
            raise RetentionRefused(f"cannot write {name} to {directory}: "
                                   f"{error.strerror or error}") from None
    finally:
        export.file.close()
    try:
        report = verify_export(str(path), key.public_key())
    except MalformedExport as error:  # pragma: no cover - the bundle was just written
        raise RetentionRefused(f"{path} cannot be read back: {error}") from None
    if not report.ok or manifest["count"] != last - first + 1:
        raise RetentionRefused(f"{path} does not verify from disk ({report.problem}); the rows "
                               "stay in the database")
    archive = AuditArchive(first_seq=first, last_seq=last, count=manifest["count"],
                           anchor_prev_hash=anchor, last_hash=manifest["last_hash"],
                           file_name=name, file_sha256=export.file_sha256,
                           key_id=manifest["key_id"], archived_at=now,
                           archived_by=f"{actor.type.value}:{actor.id}"[:200])
    session.add(archive)
    session.flush()
    removed = session.execute(delete(AuditEvent).where(AuditEvent.seq.between(first, last))
                              .execution_options(synchronize_session=False)).rowcount
    if removed != archive.count:  # pragma: no cover - the trigger and the range rule it out
        raise RetentionRefused(f"expected to remove {archive.count} rows, found {removed}")
    record(session, actor=actor, action=AuditAction.AUDIT_LOG_ARCHIVE,
           target=Target("audit_archive", name), at=now,
           details={"first_seq": first, "last_seq": last, "count": archive.count,
                    "file_sha256": archive.file_sha256, "key_id": archive.key_id,
                    "cutoff": cutoff.isoformat()})
    return ArchiveRun(f"archived rows {first} to {last} ({archive.count} events older than "
                      f"{cutoff:%Y-%m-%d}) to {name}", archive)


def retention_job(session: Session, actor: Actor, now: dt.datetime) -> str:
    """The scheduler's ``audit.retention`` job (in the app context, for its settings)."""
    from flask import current_app

    return archive_due(session, actor, current_app.extensions["settings"].audit, now).summary


@dataclass(frozen=True)
class ArchivesReport:
    status: str  # "verified", "none", "not checked (...)" or "failed"
    count: int
    checked: int = 0
    seq: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "count": self.count, "checked": self.checked,
                "seq": self.seq, "problem": self.problem}


def verify_archives(session: Session, public_key: Ed25519PublicKey | None,
                    directory: str | None, *, no_key: str) -> ArchivesReport:
    """Every archive against its bundle in ``directory``, and their succession."""
    archives = session.scalars(select(AuditArchive).order_by(AuditArchive.last_seq)).all()
    if not archives:
        return ArchivesReport("none", 0)
    if public_key is None or directory is None:
        return ArchivesReport(no_key if public_key is None else "not checked (no "
                              "AUDIT_ARCHIVE_DIR)", len(archives))
    expected_first, expected_anchor = 1, GENESIS_HASH
    for checked, archive in enumerate(archives):
        problem = _archive_problem(archive, public_key, Path(directory), expected_first,
                                   expected_anchor)
        if problem:
            return ArchivesReport("failed", len(archives), checked, archive.first_seq,
                                  f"archive {archive.file_name}: {problem}")
        expected_first, expected_anchor = archive.last_seq + 1, archive.last_hash
    return ArchivesReport("verified", len(archives), len(archives))


def _archive_problem(archive: AuditArchive, public_key: Ed25519PublicKey, directory: Path,
                     expected_first: int, expected_anchor: str) -> str | None:
    if (archive.first_seq, archive.anchor_prev_hash) != (expected_first, expected_anchor):
        return (f"starts at row {archive.first_seq}, but the archives before it end at row "
                f"{expected_first - 1} (rows are missing, or an archive was inserted)")
    path = directory / archive.file_name
    if not path.is_file():
        return f"the bundle is missing from {directory}"
    if sha256_of(path) != archive.file_sha256:
        return "the bundle's sha256 differs from the one recorded when it was archived"
    try:
        report = verify_export(str(path), public_key)
    except MalformedExport as error:
        return f"the bundle cannot be read: {error}"
    if not report.ok:
        return f"the bundle does not verify: {report.problem}"
    signed = report.manifest
    if (signed["first_seq"], signed["last_seq"], signed["anchor_prev_hash"],
            signed["last_hash"]) != (archive.first_seq, archive.last_seq,
                                     archive.anchor_prev_hash, archive.last_hash):
        return ("the database's record of the archive differs from the bundle's signed "
                "manifest: " + json.dumps({"first_seq": signed["first_seq"],
                                           "last_seq": signed["last_seq"]}))
    return None
