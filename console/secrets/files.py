"""Secrets mounted by the platform: a directory of files, one secret per file.

Kubernetes secret volumes, Docker/Compose secrets (``/run/secrets``) and systemd credentials
(``$CREDENTIALS_DIRECTORY``, ``LoadCredential=``) all look the same: a read-only directory the
platform fills. The secret ``webhook/sandbox/ab12cd34`` is the file
``<root>/webhook/sandbox/ab12cd34``.

Reads never leave the directory: names are checked by ``check_name`` (no ``..``, no absolute
paths), the resolved path must still be under the resolved root (a symlink pointing outside is
refused), and only regular files are read. Kubernetes mounts each file as a symlink into a
``..data`` directory *inside* the volume, which stays allowed.
"""

from __future__ import annotations

import os
from pathlib import Path

from console.secrets.store import ReadOnlyStore, SecretNotFound, SecretStoreError, check_name

MAX_BYTES = 1 << 20  # a secret is small; anything bigger is a mistake, not a secret


class FileStore:
    kind = "files"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        path = Path(root)
        if not path.is_dir():
            raise SecretStoreError(f"secret directory {str(path)!r} does not exist or is not a "
                                   "directory")
        self.root = path.resolve()

    def _path(self, name: str) -> Path:
        check_name(name)
        candidate = (self.root / name).resolve()
        if not candidate.is_relative_to(self.root) or candidate == self.root:
            # Never say where the link points: the message names the secret only.
            raise SecretStoreError(f"secret {name!r} resolves outside the secret directory")
        return candidate

    def get(self, name: str) -> bytes:
        path = self._path(name)
        if not path.is_file():
            raise SecretNotFound(name)
        try:
            with path.open("rb") as handle:
                value = handle.read(MAX_BYTES + 1)
        except OSError as exc:
            raise SecretStoreError(f"cannot read secret {name!r} ({exc.strerror})") from None
        if len(value) > MAX_BYTES:
            raise SecretStoreError(f"secret {name!r} is larger than {MAX_BYTES} bytes")
        # Mounted secrets often end with the newline an editor or `echo` added.
        return value.rstrip(b"\r\n")

    def put(self, name: str, value: bytes) -> None:
        raise ReadOnlyStore("platform-mounted secrets are provisioned by the platform, not the "
                            "console: add the secret to the platform's secret and redeploy")

    def delete(self, name: str) -> None:
        raise ReadOnlyStore("platform-mounted secrets are removed by the platform")

    def names(self, prefix: str = "") -> list[str]:
        found: list[str] = []
        for directory, subdirs, files in os.walk(self.root):
            # Kubernetes' ``..data`` / ``..2026_…`` bookkeeping directories hold the real files
            # behind the top-level symlinks; listing them would show every secret twice.
            subdirs[:] = [d for d in subdirs if not d.startswith(".")]
            for file in files:
                relative = (Path(directory) / file).relative_to(self.root).as_posix()
                try:
                    self._path(relative)
                except (ValueError, SecretStoreError):
                    continue
                if relative.startswith(prefix) and (Path(directory) / file).resolve().is_file():
                    found.append(relative)
        return sorted(found)
