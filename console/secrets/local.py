"""The embedded default's encrypted keystore: one file per secret, AES-GCM envelope encryption.

Each secret gets its own random 256-bit data key; the value is encrypted with it (AES-256-GCM,
the secret's name as associated data, so a file renamed to another secret's name fails to
decrypt), and the data key is itself encrypted ("wrapped") with the master key (AES-256-GCM,
associated data ``wrap:<name>``). Only the master key decrypts anything, and it lives in a file
outside the repository (``SECRETS_LOCAL_MASTER_KEY_FILE``), readable by the console's user only.

Writes are atomic (temporary file in the same directory, fsync, ``os.replace``) and files are
created with mode 0600. Production refuses this backend (``console.secrets.factory``): it is for
a laptop or a single-box sandbox, not for a payment programme's keys.

File format (JSON): ``{"v": 1, "wrap_nonce", "wrapped_key", "nonce", "ciphertext"}`` (base64).
"""

from __future__ import annotations

import base64
import json
import os
import secrets as _secrets
import tempfile
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from console.secrets.store import SecretNotFound, SecretStoreError, check_name

MASTER_KEY_BYTES = 32
SUFFIX = ".secret"
FORMAT_VERSION = 1


def read_master_key(path: str | os.PathLike[str]) -> bytes:
    """The master key file holds 32 random bytes, base64 (``generate_master_key`` writes one)."""
    try:
        text = Path(path).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not text"
        raise SecretStoreError(f"cannot read the local keystore master key ({reason})") from None
    try:
        key = base64.b64decode(text, validate=True)
    except ValueError:
        raise SecretStoreError("the local keystore master key file must hold base64") from None
    if len(key) != MASTER_KEY_BYTES:
        raise SecretStoreError(f"the local keystore master key must be {MASTER_KEY_BYTES} bytes")
    return key


def generate_master_key(path: str | os.PathLike[str]) -> None:
    """Write a new master key with mode 0600; refuses to overwrite an existing one."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(base64.b64encode(_secrets.token_bytes(MASTER_KEY_BYTES)).decode() + "\n")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class LocalKeystore:
    kind = "local"

    def __init__(self, root: str | os.PathLike[str], master_key: bytes) -> None:
        if len(master_key) != MASTER_KEY_BYTES:
            raise SecretStoreError(f"the local keystore master key must be {MASTER_KEY_BYTES} "
                                   "bytes")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._master = AESGCM(master_key)

    def _path(self, name: str) -> Path:
        return self.root / (check_name(name) + SUFFIX)

    def get(self, name: str) -> bytes:
        path = self._path(name)
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SecretNotFound(name) from None
        except (OSError, ValueError):
            raise SecretStoreError(f"secret {name!r} cannot be read from the local keystore") \
                from None
        try:
            if document.get("v") != FORMAT_VERSION:
                raise ValueError
            data_key = self._master.decrypt(base64.b64decode(document["wrap_nonce"]),
                                            base64.b64decode(document["wrapped_key"]),
                                            f"wrap:{name}".encode())
            return AESGCM(data_key).decrypt(base64.b64decode(document["nonce"]),
                                            base64.b64decode(document["ciphertext"]),
                                            name.encode())
        except (InvalidTag, KeyError, TypeError, ValueError, AttributeError):
            # Wrong master key, a tampered file, or a file copied under another name.
            raise SecretStoreError(f"secret {name!r} does not decrypt with this master key") \
                from None

    def put(self, name: str, value: bytes) -> None:
        if not isinstance(value, bytes | bytearray):
            raise TypeError("a secret value is bytes")
        path = self._path(name)
        data_key = AESGCM.generate_key(bit_length=256)
        nonce, wrap_nonce = _secrets.token_bytes(12), _secrets.token_bytes(12)
        document = {
            "v": FORMAT_VERSION,
            "wrap_nonce": _b64(wrap_nonce),
            "wrapped_key": _b64(self._master.encrypt(wrap_nonce, data_key,
                                                     f"wrap:{name}".encode())),
            "nonce": _b64(nonce),
            "ciphertext": _b64(AESGCM(data_key).encrypt(nonce, bytes(value), name.encode())),
        }
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # mkstemp creates the file 0600; the rename is atomic on one file system.
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=SUFFIX)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(document, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def delete(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)

    def names(self, prefix: str = "") -> list[str]:
        found = []
        for path in self.root.rglob("*" + SUFFIX):
            if path.name.startswith(".tmp-"):
                continue
            name = path.relative_to(self.root).as_posix()[: -len(SUFFIX)]
            if name.startswith(prefix):
                found.append(name)
        return sorted(found)
