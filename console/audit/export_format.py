"""The audit export file: what the exporter writes and the offline verifier reads, side by side so
the two cannot drift apart.

An export is a zip of three members:

- ``events.jsonl``: one canonical JSON object per audit row, in sequence order: every column the
  row hash covers (``console.audit.chain.hashed_fields``) plus ``prev_hash`` and ``hash``.
- ``manifest.json``: the range (first/last seq, count), the anchor (the first row's prev_hash),
  the last row's hash, the SHA-256 of ``events.jsonl``, who exported it, when, for which window,
  and the signing key's fingerprint.
- ``events.csv`` (CSV exports only, manifest ``events_format: "csv"``): the same rows for
  spreadsheets, a header row then one row per event, the columns of ``CSV_COLUMNS``, details as
  its stored compact JSON, null as an empty cell, and a cell that begins with = + - @ TAB or CR
  prefixed with a single quote (spreadsheet formula injection). Those two rules lose
  information (null and "" look alike; a value that really begins with a quote is ambiguous),
  so the chain cannot be recomputed exactly from CSV alone: ``events.jsonl`` stays in the zip
  as the chain-carrying member, and the verifier renders every verified JSON row as its CSV row
  (``csv_row``) and compares cell by cell, naming the first differing row. The manifest holds
  the CSV's SHA-256 too (``events_csv_sha256``).
- ``manifest.sig``: base64 Ed25519 signature over the exact bytes of ``manifest.json``.
- ``checkpoints.jsonl``: the signed checkpoints (``console.audit.checkpoint_format``) whose row
  lies in the exported range, one canonical JSON object per line in seq order; the manifest
  holds its SHA-256 and count. Exports made before checkpoints existed have neither.

Standard library, ``cryptography`` and ``console.audit.chain`` only: the auditors' verifier
(``console.audit.offline``) runs without a database or an application.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import datetime as dt
import hashlib
import io
import json
import re
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from console.audit.chain import canonical_json, fields_of, flat_canonical_json, timestamp_text

FORMAT = "finci-console-audit-export/1"
EVENTS_NAME = "events.jsonl"
MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.sig"
CHECKPOINTS_NAME = "checkpoints.jsonl"
EVENTS_CSV_NAME = "events.csv"
MEMBERS = (EVENTS_NAME, MANIFEST_NAME, SIGNATURE_NAME)
JSONL, CSV = "jsonl", "csv"
EVENT_FORMATS = (JSONL, CSV)
CSV_COLUMNS = ("seq", "occurred_at", "actor_type", "actor_id", "action", "target_type",
               "target_id", "outcome", "source_ip", "request_id", "details", "prev_hash",
               "hash")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

_HASH = re.compile(r"[0-9a-f]{64}")
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")  # chain.timestamp_text
_REQUIRED_TEXT = ("occurred_at", "actor_type", "actor_id", "action", "outcome", "details")
_OPTIONAL_TEXT = ("target_type", "target_id", "source_ip", "request_id")
ROW_KEYS = frozenset({"seq", *_REQUIRED_TEXT, *_OPTIONAL_TEXT, "prev_hash", "hash"})


class MalformedExport(ValueError):
    """The export cannot be read (not tampering evidence, just not a readable export)."""


def is_hash(value: Any) -> bool:
    return isinstance(value, str) and _HASH.fullmatch(value) is not None


def is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --- events.jsonl ----------------------------------------------------------------------------

def event_line(row) -> bytes:
    """One audit row (database row or ORM object) as its events.jsonl line."""
    return (flat_canonical_json(row_values(row)) + "\n").encode()


def row_values(row) -> dict[str, Any]:
    """What events.jsonl holds for a row (database row, ORM object or ``ExportedRow``)."""
    return fields_of(row) | {"prev_hash": row.prev_hash, "hash": row.row_hash}


# --- events.csv ------------------------------------------------------------------------------

def csv_cell(value: Any) -> str:
    """A value as its CSV cell: null empty, and a would-be formula quoted with a leading '."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_row(row) -> list[str]:
    """The CSV cells of a row, from the same values as its events.jsonl line."""
    values = row_values(row)
    return [csv_cell(values[column]) for column in CSV_COLUMNS]


def csv_bytes(cells) -> bytes:
    """One CSV record (RFC 4180: CRLF, quoted where needed), UTF-8."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(cells)
    return out.getvalue().encode()


CSV_HEADER = csv_bytes(CSV_COLUMNS)


@dataclass(frozen=True)
class ExportedRow:
    """A row read back from events.jsonl, with the attributes ``verify_rows`` walks."""

    seq: int
    occurred_at: dt.datetime
    actor_type: str
    actor_id: str
    action: str
    target_type: str | None
    target_id: str | None
    outcome: str
    source_ip: str | None
    request_id: str | None
    details: str
    prev_hash: str
    row_hash: str


def parse_event_line(line: bytes, number: int) -> ExportedRow:
    where = f"{EVENTS_NAME} line {number}"
    try:
        value = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise MalformedExport(f"{where} is not valid JSON") from None
    if not isinstance(value, dict) or set(value) != ROW_KEYS:
        raise MalformedExport(f"{where} is not an audit event (expected the keys "
                              f"{', '.join(sorted(ROW_KEYS))})")
    if not is_count(value["seq"]):
        raise MalformedExport(f"{where}: seq is not a whole number")
    for key in _REQUIRED_TEXT:
        if not isinstance(value[key], str):
            raise MalformedExport(f"{where}: {key} is not text")
    for key in _OPTIONAL_TEXT:
        if value[key] is not None and not isinstance(value[key], str):
            raise MalformedExport(f"{where}: {key} is neither text nor null")
    if not (is_hash(value["prev_hash"]) and is_hash(value["hash"])):
        raise MalformedExport(f"{where}: prev_hash and hash must be 64 lowercase hex digits")
    return ExportedRow(
        seq=value["seq"], occurred_at=_timestamp(value["occurred_at"], where, "occurred_at"),
        actor_type=value["actor_type"],
        actor_id=value["actor_id"], action=value["action"], target_type=value["target_type"],
        target_id=value["target_id"], outcome=value["outcome"], source_ip=value["source_ip"],
        request_id=value["request_id"], details=value["details"], prev_hash=value["prev_hash"],
        row_hash=value["hash"],
    )


def _timestamp(text: str, where: str, key: str) -> dt.datetime:
    """Exactly the shape ``timestamp_text`` writes; a re-formatted time is malformed."""
    moment = None
    if _TIMESTAMP.fullmatch(text):
        with contextlib.suppress(ValueError):  # the right shape, no such moment (February 30)
            moment = dt.datetime.fromisoformat(text[:-1]).replace(tzinfo=dt.UTC)
    if moment is None:
        raise MalformedExport(f"{where}: {key} is not a timestamp like "
                              "2026-11-27T09:30:00.000000Z")
    return moment


# --- checkpoints.jsonl -----------------------------------------------------------------------

CHECKPOINT_KEYS = frozenset({"seq", "hash", "signed_at", "key_id", "signature"})


def checkpoint_line(checkpoint) -> bytes:
    """One signed checkpoint (database row or ORM object) as its checkpoints.jsonl line."""
    return (canonical_json({"seq": checkpoint.seq, "hash": checkpoint.hash,
                            "signed_at": timestamp_text(checkpoint.signed_at),
                            "key_id": checkpoint.key_id, "signature": checkpoint.signature})
            + "\n").encode()


@dataclass(frozen=True)
class ExportedCheckpoint:
    """A checkpoint read back from checkpoints.jsonl, as ``checkpoint_problem`` checks it."""

    seq: int
    hash: str
    signed_at: dt.datetime
    key_id: str
    signature: str


def parse_checkpoint_line(line: bytes, number: int) -> ExportedCheckpoint:
    where = f"{CHECKPOINTS_NAME} line {number}"
    try:
        value = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise MalformedExport(f"{where} is not valid JSON") from None
    if not isinstance(value, dict) or set(value) != CHECKPOINT_KEYS:
        raise MalformedExport(f"{where} is not a checkpoint (expected the keys "
                              f"{', '.join(sorted(CHECKPOINT_KEYS))})")
    if not (is_count(value["seq"]) and is_hash(value["hash"])
            and all(isinstance(value[k], str) for k in ("signed_at", "key_id", "signature"))):
        raise MalformedExport(f"{where}: seq must be a whole number, hash 64 lowercase hex "
                              "digits, signed_at, key_id and signature text")
    return ExportedCheckpoint(seq=value["seq"], hash=value["hash"],
                              signed_at=_timestamp(value["signed_at"], where, "signed_at"),
                              key_id=value["key_id"], signature=value["signature"])


# --- manifest and signature ------------------------------------------------------------------

def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    """Readable JSON; the signature covers these exact bytes, so the layout needs no canon."""
    return (json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def key_fingerprint(public_key: Ed25519PublicKey) -> str:
    """SHA-256 of the public key's DER SubjectPublicKeyInfo, as ``SHA256:<hex>``."""
    der = public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return "SHA256:" + hashlib.sha256(der).hexdigest()


def public_key_pem(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


def public_key_file_text(public_key: Ed25519PublicKey) -> str:
    """The public key file handed to auditors (``flask audit public-key`` and the audit page):
    the PEM then its fingerprint. PEM readers skip text around the block, so it loads as is."""
    return f"{public_key_pem(public_key).rstrip()}\nkey id: {key_fingerprint(public_key)}\n"


def public_key_filename(public_key: Ed25519PublicKey) -> str:
    """``audit-export-<first 16 hex digits of the fingerprint>.pub.pem``."""
    return f"audit-export-{key_fingerprint(public_key).removeprefix('SHA256:')[:16]}.pub.pem"


def sign(private_key: Ed25519PrivateKey, manifest: bytes) -> bytes:
    return base64.b64encode(private_key.sign(manifest)) + b"\n"
