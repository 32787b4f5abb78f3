"""Verify an audit export without the console: no database, no application, no settings.

    python -m console.audit.offline EXPORT.zip --public-key PUBLIC.pem [--json]

Exit 0: the signature verifies with the given key, and events.jsonl is exactly the signed run of
the hash chain (every row's hash recomputed, every link checked from the signed anchor to the
signed last hash), and every checkpoint in checkpoints.jsonl is signed by the same key and names
the hash of the exported row at its seq. Exit 1: the first problem found (wrong key, changed
manifest or signature, a changed, missing, inserted or reordered row, a chain rewritten before
export that no longer matches its checkpoints; in a CSV export, the first events.csv row that
differs from its verified events.jsonl row). Exit 2: the input cannot be read (not a zip, a
member missing, bad JSON, an unreadable key file).

Imports only the standard library, ``cryptography`` and the chain and file-format modules
(``console.audit.chain``, ``console.audit.export_format``, ``console.audit.checkpoint_format``),
which share the hash function and the
chain walk with the console itself.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import csv
import hashlib
import io
import json
import sys
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from console.audit import export_format as fmt
from console.audit.chain import verify_rows
from console.audit.checkpoint_format import checkpoint_problem

MAX_MANIFEST_BYTES = 64 * 1024
MAX_SIGNATURE_BYTES = 1024
MAX_LINE_BYTES = 16 * 1024 * 1024
MAX_CHECKPOINTS_BYTES = 16 * 1024 * 1024
# What a damaged or hostile zip raises while a member is read.
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError,
               RuntimeError)


@dataclass(frozen=True)
class OfflineReport:
    ok: bool
    manifest: dict[str, Any]
    problem: str | None = None
    broken_seq: int | None = None

    def as_dict(self) -> dict[str, Any]:
        if not self.ok:
            return {"ok": False, "problem": self.problem, "broken_seq": self.broken_seq}
        keys = ("first_seq", "last_seq", "count", "anchor_prev_hash", "last_hash",
                "exported_at", "exported_by", "window", "key_id")
        return {"ok": True, **{key: self.manifest[key] for key in keys},
                "checkpoints": self.manifest.get("checkpoints_count")}


def load_public_key(path: str) -> Ed25519PublicKey:
    try:
        with open(path, "rb") as handle:
            pem = handle.read(64 * 1024)
    except OSError as error:
        raise fmt.MalformedExport(
            f"cannot read the public key {path!r} ({error.strerror})") from None
    try:
        key = load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm):
        raise fmt.MalformedExport(f"{path!r} is not a PEM public key (expected -----BEGIN "
                                  "PUBLIC KEY-----, from `flask --app wsgi audit public-key`)"
                                  ) from None
    if not isinstance(key, Ed25519PublicKey):
        raise fmt.MalformedExport(f"{path!r} is not an Ed25519 public key")
    return key


def _read_member(archive: zipfile.ZipFile, name: str, limit: int) -> bytes:
    try:
        with archive.open(name) as member:
            data = member.read(limit + 1)
    except _ZIP_ERRORS as error:
        raise fmt.MalformedExport(f"cannot read {name} from the export ({error})") from None
    if len(data) > limit:
        raise fmt.MalformedExport(f"{name} is larger than {limit:,} bytes")
    return data


def _check_manifest(manifest: dict[str, Any]) -> None:
    """The signed manifest has what the walk needs (else it was not made by the console)."""
    if manifest.get("format") != fmt.FORMAT:
        raise fmt.MalformedExport(f"{fmt.MANIFEST_NAME}: format is not {fmt.FORMAT!r}")
    for key in ("first_seq", "last_seq", "count"):
        if not fmt.is_count(manifest.get(key)) or manifest[key] < 1:
            raise fmt.MalformedExport(f"{fmt.MANIFEST_NAME}: {key} is not a positive number")
    for key in ("anchor_prev_hash", "last_hash", "events_sha256"):
        if not fmt.is_hash(manifest.get(key)):
            raise fmt.MalformedExport(f"{fmt.MANIFEST_NAME}: {key} is not a SHA-256 hex digest")
    if manifest.get("events_format", fmt.JSONL) not in fmt.EVENT_FORMATS:
        raise fmt.MalformedExport(f"{fmt.MANIFEST_NAME}: events_format is not "
                                  f"{' or '.join(fmt.EVENT_FORMATS)}")
    if manifest.get("events_format") == fmt.CSV and not fmt.is_hash(
            manifest.get("events_csv_sha256")):
        raise fmt.MalformedExport(f"{fmt.MANIFEST_NAME}: events_csv_sha256 is not a SHA-256 "
                                  "hex digest")
    if "checkpoints_sha256" in manifest and not (
            fmt.is_hash(manifest["checkpoints_sha256"])
            and fmt.is_count(manifest.get("checkpoints_count"))):
        raise fmt.MalformedExport(f"{fmt.MANIFEST_NAME}: checkpoints_sha256 or "
                                  "checkpoints_count is malformed")


def _event_lines(archive: zipfile.ZipFile) -> Iterator[bytes]:
    try:
        with archive.open(fmt.EVENTS_NAME) as handle:
            while line := handle.readline(MAX_LINE_BYTES + 1):
                if len(line) > MAX_LINE_BYTES:
                    raise fmt.MalformedExport(f"{fmt.EVENTS_NAME} has a line longer than "
                                              f"{MAX_LINE_BYTES:,} bytes")
                yield line
    except _ZIP_ERRORS as error:
        raise fmt.MalformedExport(f"cannot read {fmt.EVENTS_NAME} from the export "
                                  f"({error})") from None


class _CsvRows:
    """events.csv read alongside events.jsonl: each verified JSON row is rendered as its CSV row
    (``export_format.csv_row``) and compared cell by cell; the first difference is kept."""

    def __init__(self, archive: zipfile.ZipFile):
        self.digest = hashlib.sha256()
        self.problem: tuple[str, int | None] | None = None
        self.number = 0
        self._member = archive.open(fmt.EVENTS_CSV_NAME)
        text = io.TextIOWrapper(self._member, encoding="utf-8", newline="")
        csv.field_size_limit(max(csv.field_size_limit(), MAX_LINE_BYTES))
        self._reader = csv.reader(self._hashed(text))
        try:
            header = self._next()
        except fmt.MalformedExport:
            self.close()
            raise
        if header != list(fmt.CSV_COLUMNS):
            self.close()
            raise fmt.MalformedExport(f"{fmt.EVENTS_CSV_NAME}: the header row is not "
                                      f"{','.join(fmt.CSV_COLUMNS)}")

    def _hashed(self, text: io.TextIOWrapper) -> Iterator[str]:
        while line := text.readline(MAX_LINE_BYTES + 1):
            if len(line) > MAX_LINE_BYTES:
                raise fmt.MalformedExport(f"{fmt.EVENTS_CSV_NAME} has a line longer than "
                                          f"{MAX_LINE_BYTES:,} characters")
            self.digest.update(line.encode())
            yield line

    def _next(self) -> list[str] | None:
        try:
            return next(self._reader, None)
        except (csv.Error, UnicodeDecodeError, *_ZIP_ERRORS) as error:
            raise fmt.MalformedExport(f"cannot read {fmt.EVENTS_CSV_NAME} from the export "
                                      f"({error})") from None

    def compare(self, row: fmt.ExportedRow) -> None:
        cells = self._next()
        if self.problem:
            return
        self.number += 1
        where = f"{fmt.EVENTS_CSV_NAME} row {self.number} (seq {row.seq})"
        if cells is None:
            self.problem = (f"{where} is missing (events.jsonl has it)", row.seq)
            return
        expected = fmt.csv_row(row)
        if len(cells) != len(expected):
            self.problem = (f"{where} has {len(cells)} cells, not {len(expected)}", row.seq)
            return
        for column, cell, want in zip(fmt.CSV_COLUMNS, cells, expected, strict=True):
            if cell != want:
                self.problem = (f"{where}: {column} is {cell!r}, but events.jsonl has "
                                f"{want!r} (edited after export)", row.seq)
                return

    def finish(self) -> tuple[str, int | None] | None:
        if self.problem:
            return self.problem
        if self._next() is not None:
            return (f"{fmt.EVENTS_CSV_NAME}: row {self.number + 1} was added after the last "
                    "exported event", None)
        return None

    def close(self) -> None:
        self._member.close()


def _open_csv(archive: zipfile.ZipFile) -> _CsvRows:
    try:
        return _CsvRows(archive)
    except _ZIP_ERRORS as error:
        raise fmt.MalformedExport(f"cannot read {fmt.EVENTS_CSV_NAME} from the export "
                                  f"({error})") from None


def verify_export(path: str, public_key: Ed25519PublicKey) -> OfflineReport:
    """Check signature, manifest and every row. MalformedExport if it cannot be read."""
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise fmt.MalformedExport(f"{path!r} is not a zip file") from None
    except OSError as error:
        raise fmt.MalformedExport(f"cannot read {path!r} ({error.strerror})") from None
    with archive:
        return _verify_archive(archive, public_key)


def _verify_archive(archive: zipfile.ZipFile, public_key: Ed25519PublicKey) -> OfflineReport:
    names = Counter(archive.namelist())
    for name in fmt.MEMBERS:
        if name not in names:
            raise fmt.MalformedExport(f"the export has no {name}")
    manifest_bytes = _read_member(archive, fmt.MANIFEST_NAME, MAX_MANIFEST_BYTES)
    signature_text = _read_member(archive, fmt.SIGNATURE_NAME, MAX_SIGNATURE_BYTES)
    try:
        manifest = json.loads(manifest_bytes)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise fmt.MalformedExport(f"{fmt.MANIFEST_NAME} is not valid JSON") from None
    if not isinstance(manifest, dict):
        raise fmt.MalformedExport(f"{fmt.MANIFEST_NAME} is not a JSON object")

    def failed(problem: str, seq: int | None = None) -> OfflineReport:
        return OfflineReport(False, manifest, problem, seq)

    # 1. The manifest is the one the console signed, with this key.
    key_id = fmt.key_fingerprint(public_key)
    try:
        signature = base64.b64decode(signature_text.strip(), validate=True)
        public_key.verify(signature, manifest_bytes)
    except (binascii.Error, InvalidSignature):
        if manifest.get("key_id") != key_id:
            return failed(f"wrong public key: the export says it was signed by "
                          f"{manifest.get('key_id')}, the key given is {key_id}")
        return failed(f"the signature does not verify: {fmt.MANIFEST_NAME} or "
                      f"{fmt.SIGNATURE_NAME} was changed after export")
    _check_manifest(manifest)
    # Exports from before checkpoints existed have no checkpoints.jsonl (and say so, signed).
    is_csv = manifest.get("events_format") == fmt.CSV
    signed_members = (fmt.MEMBERS
                      + ((fmt.CHECKPOINTS_NAME,) if "checkpoints_sha256" in manifest else ())
                      + ((fmt.EVENTS_CSV_NAME,) if is_csv else ()))
    extra = sorted(name for name, n in names.items() if name not in signed_members or n > 1)
    if extra:
        return failed(f"the export holds files the signature does not cover: {', '.join(extra)}")
    checkpoints = []
    if "checkpoints_sha256" in manifest:
        if fmt.CHECKPOINTS_NAME not in names:
            raise fmt.MalformedExport(f"the export has no {fmt.CHECKPOINTS_NAME}")
        data = _read_member(archive, fmt.CHECKPOINTS_NAME, MAX_CHECKPOINTS_BYTES)
        if hashlib.sha256(data).hexdigest() != manifest["checkpoints_sha256"]:
            return failed(f"{fmt.CHECKPOINTS_NAME}: the file differs from the SHA-256 in the "
                          "manifest (edited after export)")
        checkpoints = [fmt.parse_checkpoint_line(line, number)
                       for number, line in enumerate(data.splitlines(keepends=True), 1)]
        if len(checkpoints) != manifest["checkpoints_count"]:
            return failed(f"{fmt.CHECKPOINTS_NAME}: {len(checkpoints)} checkpoints, but the "
                          f"manifest counts {manifest['checkpoints_count']}")
    checkpointed = {checkpoint.seq for checkpoint in checkpoints}
    row_hashes: dict[int, str] = {}

    # 2. events.jsonl is exactly the signed run of the chain, row by row.
    first, last = manifest["first_seq"], manifest["last_seq"]
    digest = hashlib.sha256()

    if is_csv and fmt.EVENTS_CSV_NAME not in names:
        raise fmt.MalformedExport(f"the export has no {fmt.EVENTS_CSV_NAME}")
    table = _open_csv(archive) if is_csv else None

    def rows(lines: Iterator[bytes]):
        for number, line in enumerate(lines, 1):
            digest.update(line)
            row = fmt.parse_event_line(line, number)
            if row.seq in checkpointed:
                row_hashes[row.seq] = row.row_hash
            yield row
            if table:  # only rows the chain walk accepted reach the comparison
                table.compare(row)

    try:
        with closing(_event_lines(archive)) as lines:
            report = verify_rows(rows(lines), first_seq=first,
                                 anchor=manifest["anchor_prev_hash"])
        csv_problem = table.finish() if table else None
    finally:
        if table:
            table.close()
    where = f"{fmt.EVENTS_NAME}: "
    if not report.ok:
        return failed(where + str(report.problem), report.broken_seq)
    if report.head_seq is None:
        return failed(where + f"no events, but the manifest lists rows {first} to {last}", first)
    if report.head_seq < last:
        return failed(where + f"rows after {report.head_seq} are missing (the manifest's last "
                      f"row is {last})", report.head_seq + 1)
    if report.head_seq > last:
        return failed(where + f"row {last + 1} was added after the manifest's last row {last}",
                      last + 1)
    if report.head_hash != manifest["last_hash"]:
        return failed(where + f"row {last}'s hash differs from the manifest's last hash", last)
    if report.rows != manifest["count"]:
        return failed(where + f"{report.rows} events, but the manifest counts "
                      f"{manifest['count']}")
    if digest.hexdigest() != manifest["events_sha256"]:
        return failed(where + "the file differs from the SHA-256 in the manifest (edited "
                      "after export)")
    # 3. events.csv shows the same rows, cell for cell, and is the file that was signed.
    if csv_problem:
        return failed(*csv_problem)
    if table and table.digest.hexdigest() != manifest["events_csv_sha256"]:
        return failed(f"{fmt.EVENTS_CSV_NAME}: the file differs from the SHA-256 in the "
                      "manifest (edited after export)")
    # 4. The exported rows still have the hashes the console signed at its checkpoints: a chain
    # rewritten in the database before this export does not.
    for checkpoint in checkpoints:
        problem = checkpoint_problem(public_key, checkpoint, row_hashes.get(checkpoint.seq))
        if problem:
            return failed(f"{fmt.CHECKPOINTS_NAME}: {problem}", checkpoint.seq)
    return OfflineReport(True, manifest)


def _summary(report: OfflineReport) -> str:
    m = report.manifest
    window = m.get("window") or {}
    by = m.get("exported_by") or {}
    return "\n".join([
        f"export valid: {m['count']:,} events, #{m['first_seq']} to #{m['last_seq']}",
        f"  window:      {window.get('since') or 'start'} to {window.get('until') or 'end'}",
        f"  exported:    {m.get('exported_at')} by {by.get('actor_type')}:{by.get('actor_id')}",
        f"  signed by:   {m['key_id']}",
        f"  anchor:      {m['anchor_prev_hash']} (prev_hash of #{m['first_seq']})",
        f"  last hash:   {m['last_hash']}",
        "  checkpoints: " + (f"{m['checkpoints_count']} verified" if "checkpoints_count" in m
                             else "none (the export predates checkpoints)"),
    ])


def main(argv: list[str] | None = None, prog: str = "python -m console.audit.offline") -> int:
    """The command line; ``prog`` names it in usage and help (the one-file verifier passes its
    own, console.audit.standalone)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Verify an audit log export offline. Exit 0 valid, 1 tampered or wrong key, "
                    "2 unreadable input.")
    parser.add_argument("export", help="the export zip")
    parser.add_argument("--public-key", required=True,
                        help="the console's export public key, PEM "
                             "(`flask --app wsgi audit public-key`)")
    parser.add_argument("--json", dest="as_json", action="store_true",
                        help="print JSON for scripts")
    args = parser.parse_args(argv)
    try:
        report = verify_export(args.export, load_public_key(args.public_key))
    except fmt.MalformedExport as error:
        if args.as_json:
            print(json.dumps({"ok": False, "error": str(error)}, sort_keys=True))
        else:
            print(f"error: {error}", file=sys.stderr)
        return 2
    if args.as_json:
        print(json.dumps(report.as_dict(), sort_keys=True))
    elif report.ok:
        print(_summary(report))
    else:
        print(f"export INVALID: {report.problem}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
