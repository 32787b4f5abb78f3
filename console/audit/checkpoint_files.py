"""Signed audit checkpoints kept outside the database as well (``AUDIT_CHECKPOINT_DIR``).

A checkpoint in the database vouches for the chain only while the database's own checkpoint
rows are intact: someone who can rewrite the database from checkpoint N onward can also delete
the checkpoints after N, and what remains verifies (with an "uncovered" warning at most). A copy
of every checkpoint in a place the database's writers cannot reach, a directory on other
storage or a write-once bucket mounted as one, closes that: the rewritten rows no longer match
the checkpoints kept there.

One file per checkpoint, ``audit-checkpoint-<seq, 12 digits>.json``, holding the same line as an
export's checkpoints.jsonl (``export_format.checkpoint_line``), written once: created under a
temporary name, flushed to disk, then linked to its final name, which fails rather than replace
an existing file. Writing the same checkpoint again (a retried job) is a no-op; a different one
under the same name is refused. Verifying reads every file and checks each against the key and
the chain row at its seq, with the same words as the database's own checkpoints.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from console.audit import export_format as fmt
from console.audit.checkpoint_format import checkpoint_problem
from console.audit.write_once import DifferentFileExists, write_once

NAME = re.compile(r"audit-checkpoint-(\d{12})\.json")
MAX_FILE_BYTES = 4096


class CheckpointFileError(RuntimeError):
    """A checkpoint could not be written outside the database; the message says where."""


def file_name(seq: int) -> str:
    return f"audit-checkpoint-{seq:012d}.json"


def write(directory: str, checkpoint) -> Path:
    """Keep ``checkpoint`` (seq, hash, signed_at, key_id, signature) in ``directory``."""
    try:
        return write_once(directory, file_name(checkpoint.seq),
                          [fmt.checkpoint_line(checkpoint)])
    except DifferentFileExists:
        raise CheckpointFileError(
            f"{Path(directory) / file_name(checkpoint.seq)} already holds a different "
            f"checkpoint for row {checkpoint.seq}: refusing to replace it (was the directory "
            "shared with another console, or the database restored?)") from None
    except OSError as error:
        raise CheckpointFileError(f"cannot write the checkpoint for row {checkpoint.seq} to "
                                  f"{directory}: {error.strerror or error}") from None


@dataclass(frozen=True)
class FilesReport:
    # "verified", "none" (no files yet), "not checked (no key)" or "failed".
    status: str
    directory: str
    count: int
    checked: int = 0
    latest_seq: int | None = None
    seq: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "directory": self.directory, "count": self.count,
                "checked": self.checked, "latest_seq": self.latest_seq, "seq": self.seq,
                "problem": self.problem}


def verify_files(directory: str, public_key: Ed25519PublicKey | None,
                 chain_hash: Callable[[int], str | None], *, no_key: str,
                 after: int = 0) -> FilesReport:
    """Every checkpoint file in ``directory`` against ``public_key`` and the chain
    (``chain_hash(seq)``: the row's hash, None when the chain has no such row). Files at or
    before ``after`` (rows retention archived, whose checkpoints are in the bundle) are
    counted, not checked."""
    try:
        names = sorted(n for n in os.listdir(directory) if NAME.fullmatch(n))
    except OSError as error:
        return FilesReport("failed", directory, 0,
                           problem=f"cannot read {directory}: {error.strerror or error}")
    seqs = [int(NAME.fullmatch(n).group(1)) for n in names]  # type: ignore[union-attr]
    latest = max(seqs, default=None)
    if public_key is None:
        return FilesReport(no_key, directory, len(names), latest_seq=latest)
    checked = 0
    for name, seq in zip(names, seqs, strict=True):
        if seq <= after:
            continue
        problem = _file_problem(Path(directory) / name, seq, public_key, chain_hash)
        if problem:
            return FilesReport("failed", directory, len(names), checked, latest, seq,
                               f"{name}: {problem}")
        checked += 1
    return FilesReport("verified" if checked else "none", directory, len(names), checked,
                       latest)


def _file_problem(path: Path, seq: int, public_key: Ed25519PublicKey,
                  chain_hash: Callable[[int], str | None]) -> str | None:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        return f"cannot be read ({error.strerror or error})"
    if len(data) > MAX_FILE_BYTES:
        return "is too large to be a checkpoint"
    try:
        checkpoint = fmt.parse_checkpoint_line(data, 1)
    except fmt.MalformedExport:
        return "is not a checkpoint (expected one signed checkpoint as JSON)"
    if checkpoint.seq != seq:
        return f"names row {checkpoint.seq}, not the row {seq} of its file name"
    return checkpoint_problem(public_key, checkpoint, chain_hash(seq))
