"""Audit export settings, read with the same rules as ``console.settings`` (``NAME_FILE`` for
secrets, every problem named at start, secret values never echoed).

``AUDIT_EXPORT_SIGNING_KEY`` (or ``_FILE``): the Ed25519 private key, PEM (PKCS#8,
unencrypted), that signs export manifests. Without it the console runs and refuses exports.
Generate one with ``openssl genpkey -algorithm ed25519``.
``AUDIT_EXPORT_MAX_ROWS``: the largest export, in events (a narrower window is needed beyond).
``AUDIT_CHECKPOINT_DIR``: an existing directory, on storage the database's writers cannot
change (another volume, a write-once bucket mounted as a directory), where every signed
checkpoint is also kept (console.audit.checkpoint_files). Unset: checkpoints live in the
database only.
``AUDIT_ARCHIVE_DIR``: an existing directory for retention's signed archive bundles
(console.audit.retention). Unset: retention is off and nothing is ever removed.
``AUDIT_RETENTION_MONTHS`` (default 12): rows older than this are archived, then removed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

# console.settings imports this module (for its ``audit`` field), so its helpers are imported
# where they are used, once console.settings has finished loading.

KEY_VARIABLE = "AUDIT_EXPORT_SIGNING_KEY"
DEFAULT_MAX_ROWS = 1_000_000
DEFAULT_RETENTION_MONTHS = 12


def parse_signing_key(pem: str) -> Ed25519PrivateKey:
    """The key from PEM text, or ConfigError naming the variable (never the key)."""
    from console.settings import ConfigError

    problem = f"{KEY_VARIABLE} is not a PEM private key (expected -----BEGIN PRIVATE KEY-----)"
    try:
        key = load_pem_private_key(pem.strip().encode() + b"\n", password=None)
    except TypeError:
        raise ConfigError(f"{KEY_VARIABLE} is encrypted; give an unencrypted PEM key (mount it "
                          f"from a secret store with {KEY_VARIABLE}_FILE)") from None
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(problem) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{KEY_VARIABLE} is not an Ed25519 key (found {type(key).__name__}); "
                          "generate one with `openssl genpkey -algorithm ed25519`")
    return key


@dataclass(frozen=True)
class AuditSettings:
    # Kept out of repr and comparisons: the private key is a secret.
    export_signing_key: Ed25519PrivateKey | None = field(default=None, repr=False,
                                                          compare=False)
    export_max_rows: int = DEFAULT_MAX_ROWS
    checkpoint_dir: str | None = None
    archive_dir: str | None = None
    retention_months: int = DEFAULT_RETENTION_MONTHS

    @property
    def export_configured(self) -> bool:
        return self.export_signing_key is not None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> AuditSettings:
        from console.settings import _int, _read

        pem = _read(environ, KEY_VARIABLE, secret=True)
        return cls(
            export_signing_key=parse_signing_key(pem) if pem else None,
            export_max_rows=_int(environ, "AUDIT_EXPORT_MAX_ROWS", DEFAULT_MAX_ROWS,
                                 minimum=1, maximum=50_000_000),
            checkpoint_dir=checkpoint_directory(environ.get("AUDIT_CHECKPOINT_DIR", "")),
            archive_dir=checkpoint_directory(environ.get("AUDIT_ARCHIVE_DIR", ""),
                                             "AUDIT_ARCHIVE_DIR"),
            retention_months=_int(environ, "AUDIT_RETENTION_MONTHS", DEFAULT_RETENTION_MONTHS,
                                  minimum=1, maximum=1200),
        )


def checkpoint_directory(value: str, name: str = "AUDIT_CHECKPOINT_DIR") -> str | None:
    """The directory setting ``name`` as an absolute path, or ConfigError unless it is one."""
    from console.settings import ConfigError

    value = value.strip()
    if not value:
        return None
    path = os.path.abspath(value)
    if "\x00" in value or not os.path.isdir(path):
        raise ConfigError(f"{name}={value!r} is not an existing directory "
                          "(create it on storage the database's writers cannot change)")
    return path
