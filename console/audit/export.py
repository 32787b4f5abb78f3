"""Exporting the audit log for auditors: a contiguous run of the hash chain, with a signed
manifest, that ``python -m console.audit.offline`` verifies without the console.

The window selects events by time, but the export is a sequence range: from the first event at
or after ``since`` to the last event before ``until``, every row in between. Sequence numbers
follow time, so that is the window's events; a row back-dated by its writer (``record(at=...)``)
stays in place rather than leaving a hole the verifier would have to take on trust.

The zip is built in a spooled temporary file (memory up to a few MiB, then disk) and the export
is audited (``audit.log.export``) in the caller's transaction, the one that read the rows.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import tempfile
import zipfile
from collections.abc import Callable, Generator, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import IO, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from console.audit import export_format as fmt
from console.audit.actions import AuditAction
from console.audit.chain import timestamp_text
from console.audit.models import AuditCheckpoint, AuditEvent
from console.audit.services import Actor, Target, record
from console.audit.settings import KEY_VARIABLE
from console.audit.verify import iter_rows
from console.db import utcnow

SPOOL_BYTES = 8 * 1024 * 1024
_CHUNK = 64 * 1024


class ExportRefused(Exception):
    """The export cannot be made as asked; the message says why, for the page or the CLI."""


class ExportNotConfigured(ExportRefused):
    pass


@dataclass(frozen=True)
class ExportWindow:
    """Events with ``since <= occurred_at < until``; a missing bound is open."""

    since: dt.datetime | None = None
    until: dt.datetime | None = None

    def __post_init__(self):
        if self.since and self.until and self.since >= self.until:
            raise ExportRefused("the window must end after it starts")

    def as_dict(self) -> dict[str, str | None]:
        return {"since": timestamp_text(self.since) if self.since else None,
                "until": timestamp_text(self.until) if self.until else None}


@dataclass(frozen=True)
class AuditExport:
    file: IO[bytes]  # the zip, positioned at its start; the caller sends and closes it
    size: int
    file_sha256: str
    manifest: dict[str, Any]

    @property
    def filename(self) -> str:
        return filename((self.manifest["first_seq"], self.manifest["last_seq"]))


def check_format(events_format: str) -> None:
    if events_format not in fmt.EVENT_FORMATS:
        raise ExportRefused(f"unknown export format {events_format!r}: choose "
                            f"{' or '.join(fmt.EVENT_FORMATS)}")


def seq_range(session: Session, window: ExportWindow) -> tuple[int, int] | None:
    first = select(func.min(AuditEvent.seq))
    if window.since:
        first = first.where(AuditEvent.occurred_at >= window.since)
    last = select(func.max(AuditEvent.seq))
    if window.until:
        last = last.where(AuditEvent.occurred_at < window.until)
    bounds = session.execute(select(first.scalar_subquery(), last.scalar_subquery())).one()
    if bounds[0] is None or bounds[1] is None or bounds[0] > bounds[1]:
        return None
    return bounds[0], bounds[1]


def _describe(window: ExportWindow) -> str:
    since, until = window.as_dict().values()
    return f"between {since or 'the start'} and {until or 'now'}"


def _zip_steps(sink: IO[bytes], session: Session, *, actor: Actor,
               signing_key: Ed25519PrivateKey, window: ExportWindow, bounds: tuple[int, int],
               exported_at: dt.datetime, events_format: str
               ) -> Generator[None, None, dict[str, Any]]:
    """Write the export zip to ``sink`` (which need not be seekable), pausing after every row
    so a stream can pass on what was written; returns the manifest. Every member is written as
    it is read: memory stays flat."""
    first, last = bounds
    stamp = exported_at.timetuple()[:6]
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        events_sha = hashlib.sha256()
        count, anchor, last_hash = 0, None, None
        with archive.open(zipfile.ZipInfo(fmt.EVENTS_NAME, stamp), "w",
                          force_zip64=True) as events:
            for row in iter_rows(session, first=first, last=last):
                line = fmt.event_line(row)
                events.write(line)
                events_sha.update(line)
                anchor = row.prev_hash if anchor is None else anchor
                count, last_hash = count + 1, row.row_hash
                yield
        csv_digest = None
        if events_format == fmt.CSV:
            # A second read of the same range: audit rows are append-only, so it is the same rows
            # (and one member is open at a time in a zip being written).
            csv_sha = hashlib.sha256(fmt.CSV_HEADER)
            with archive.open(zipfile.ZipInfo(fmt.EVENTS_CSV_NAME, stamp), "w",
                              force_zip64=True) as events_csv:
                events_csv.write(fmt.CSV_HEADER)
                for row in iter_rows(session, first=first, last=last):
                    line = fmt.csv_bytes(fmt.csv_row(row))
                    events_csv.write(line)
                    csv_sha.update(line)
                    yield
            csv_digest = csv_sha.hexdigest()
        checkpoints_sha, checkpoints = hashlib.sha256(), 0
        with archive.open(zipfile.ZipInfo(fmt.CHECKPOINTS_NAME, stamp), "w") as out:
            for checkpoint in session.execute(
                    select(AuditCheckpoint.__table__)
                    .where(AuditCheckpoint.seq.between(first, last))
                    .order_by(AuditCheckpoint.seq)):
                line = fmt.checkpoint_line(checkpoint)
                out.write(line)
                checkpoints_sha.update(line)
                checkpoints += 1
        manifest = {
            "format": fmt.FORMAT,
            "events_format": events_format,
            "first_seq": first,
            "last_seq": last,
            "count": count,
            "anchor_prev_hash": anchor,
            "last_hash": last_hash,
            "events_sha256": events_sha.hexdigest(),
            **({"events_csv_sha256": csv_digest} if csv_digest else {}),
            "checkpoints_count": checkpoints,
            "checkpoints_sha256": checkpoints_sha.hexdigest(),
            "exported_at": timestamp_text(exported_at),
            "exported_by": {"actor_type": actor.type.value, "actor_id": actor.id},
            "window": window.as_dict(),
            "key_id": fmt.key_fingerprint(signing_key.public_key()),
        }
        manifest_bytes = fmt.manifest_bytes(manifest)
        archive.writestr(zipfile.ZipInfo(fmt.MANIFEST_NAME, stamp), manifest_bytes)
        archive.writestr(zipfile.ZipInfo(fmt.SIGNATURE_NAME, stamp),
                         fmt.sign(signing_key, manifest_bytes))
    return manifest


def write_zip(sink: IO[bytes], session: Session, **export: Any) -> dict[str, Any]:
    """``_zip_steps`` run through: the whole zip written to ``sink``; returns the manifest."""
    steps = _zip_steps(sink, session, **export)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def prepare(session: Session, *, signing_key: Ed25519PrivateKey | None, window: ExportWindow,
            max_rows: int, events_format: str = fmt.JSONL,
            bounds: tuple[int, int] | None = None) -> tuple[int, int]:
    """The checks before any byte is written: configured, a known format, rows in the window
    and not too many. Returns the (first, last) seq range; ExportRefused says why not."""
    check_format(events_format)
    if signing_key is None:
        raise ExportNotConfigured(
            f"audit export is not configured: set {KEY_VARIABLE} (or {KEY_VARIABLE}_FILE) to "
            "an Ed25519 private key in PEM")
    bounds = bounds or seq_range(session, window)
    if bounds is None:
        raise ExportRefused(f"no audit events {_describe(window)}")
    first, last = bounds
    if last - first + 1 > max_rows:
        raise ExportRefused(
            f"{last - first + 1:,} events {_describe(window)}: more than the export limit of "
            f"{max_rows:,} (AUDIT_EXPORT_MAX_ROWS); choose a narrower window")
    return bounds


def _record_export(session: Session, *, actor: Actor, manifest: dict[str, Any],
                   file_sha256: str, exported_at: dt.datetime) -> None:
    record(session, actor=actor, action=AuditAction.AUDIT_LOG_EXPORT,
           target=Target("audit_export", file_sha256), at=exported_at,
           details={"window": manifest["window"], "first_seq": manifest["first_seq"],
                    "last_seq": manifest["last_seq"], "count": manifest["count"],
                    "format": manifest["events_format"], "file_sha256": file_sha256,
                    "events_sha256": manifest["events_sha256"], "key_id": manifest["key_id"]})


def filename(bounds: tuple[int, int]) -> str:
    return f"audit-export-{bounds[0]}-{bounds[1]}.zip"


class _Pipe:
    """An unseekable sink: zipfile writes into it (with data descriptors), the stream takes."""

    def __init__(self):
        self._chunks: list[bytes] = []
        self.size = 0

    def write(self, data) -> int:
        self._chunks.append(bytes(data))
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        self.size = 0
        return data


def stream_export(transaction: Callable[[], AbstractContextManager[Session]], *, actor: Actor,
                  signing_key: Ed25519PrivateKey, window: ExportWindow, bounds: tuple[int, int],
                  exported_at: dt.datetime, events_format: str = fmt.JSONL,
                  chunk: int = _CHUNK) -> Iterator[bytes]:
    """The zip as it is written, in chunks of about ``chunk`` bytes, for a streamed response
    (``prepare`` first). Runs in its own transaction, opened when the first chunk is asked
    for; the export is audited there once the zip is complete, and the last chunk (the zip's
    central directory, without which it is no readable zip) is given only after that commit."""
    file_sha = hashlib.sha256()
    with transaction() as session:
        pipe = _Pipe()
        steps = _zip_steps(pipe, session, actor=actor, signing_key=signing_key, window=window,
                           bounds=bounds, exported_at=exported_at, events_format=events_format)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                manifest = done.value
                break
            if pipe.size >= chunk:
                data = pipe.take()
                file_sha.update(data)
                yield data
        tail = pipe.take()
        file_sha.update(tail)
        _record_export(session, actor=actor, manifest=manifest,
                       file_sha256=file_sha.hexdigest(), exported_at=exported_at)
    yield tail


def export_log(session: Session, *, actor: Actor, signing_key: Ed25519PrivateKey | None,
               window: ExportWindow, max_rows: int, at: dt.datetime | None = None,
               spool_bytes: int = SPOOL_BYTES, bounds: tuple[int, int] | None = None,
               events_format: str = fmt.JSONL) -> AuditExport:
    """``bounds`` (first, last seq) replaces the window's range: retention's archives.
    ``events_format`` "csv" adds events.csv beside events.jsonl."""
    bounds = prepare(session, signing_key=signing_key, window=window, max_rows=max_rows,
                     events_format=events_format, bounds=bounds)
    exported_at = (at or utcnow()).astimezone(dt.UTC)
    spool = tempfile.SpooledTemporaryFile(max_size=spool_bytes)  # noqa: SIM115 - returned open
    try:
        manifest = write_zip(spool, session, actor=actor, signing_key=signing_key,
                             window=window, bounds=bounds, exported_at=exported_at,
                             events_format=events_format)
        size = spool.tell()
        spool.seek(0)
        file_sha = hashlib.sha256()
        while chunk := spool.read(_CHUNK):
            file_sha.update(chunk)
        spool.seek(0)
    except BaseException:
        spool.close()
        raise

    _record_export(session, actor=actor, manifest=manifest, file_sha256=file_sha.hexdigest(),
                   exported_at=exported_at)
    return AuditExport(file=spool, size=size, file_sha256=file_sha.hexdigest(),
                       manifest=manifest)
