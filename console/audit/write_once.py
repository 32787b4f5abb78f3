"""Files written once, for what the audit log keeps outside its database (checkpoint files,
retention archives): created under a temporary name, flushed to disk, then linked to the final
name, which never replaces an existing file. Writing the same bytes again is a no-op (a retried
job); different bytes under an existing name raise :class:`DifferentFileExists`.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterable
from pathlib import Path


class DifferentFileExists(FileExistsError):
    pass


def write_once(directory: str, name: str, chunks: Iterable[bytes], *, mode: int = 0o444
               ) -> Path:
    """``directory/name`` holding the bytes of ``chunks``; OSError if it cannot be written."""
    final = Path(directory) / name
    temporary = Path(directory) / f".{name}.{secrets.token_hex(6)}.tmp"
    digest = hashlib.sha256()
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            for chunk in chunks:
                digest.update(chunk)
                view = memoryview(chunk)
                while view:
                    view = view[os.write(descriptor, view):]
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        try:
            os.link(temporary, final)
        except FileExistsError:
            if sha256_of(final) != digest.hexdigest():
                raise DifferentFileExists(f"{final} already exists with other content") from None
        sync_directory(directory)
    finally:
        temporary.unlink(missing_ok=True)
    return final


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sync_directory(directory: str) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
