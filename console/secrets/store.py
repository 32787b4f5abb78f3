"""The secret-store interface. Backends implement it; nothing else reads secret material.

A name is a short path of lowercase letters, digits, ``-``, ``_`` and ``/`` (``card-data/keys/
k-2026-12``), never a value. Values are bytes and are never logged, rendered or stored in the
database; the inventory keeps only fingerprints.
"""

from __future__ import annotations

import re
from typing import Protocol, runtime_checkable

NAME = re.compile(r"[a-z0-9][a-z0-9_\-]*(/[a-z0-9][a-z0-9_\-]*)*")
MAX_NAME = 200


class SecretStoreError(Exception):
    """The store cannot answer (unreachable, refused, misconfigured): a clear message for the
    operator, never containing a secret value."""


class SecretNotFound(SecretStoreError, KeyError):
    """No secret of that name."""


class ReadOnlyStore(SecretStoreError):
    """This backend cannot write (platform-mounted files are provisioned by the platform)."""


def check_name(name: str) -> str:
    if not isinstance(name, str) or len(name) > MAX_NAME or not NAME.fullmatch(name):
        raise ValueError(f"not a secret name: {name[:40]!r}" if isinstance(name, str)
                         else "a secret name is a string")
    return name


@runtime_checkable
class SecretStore(Protocol):
    """``kind`` names the backend (``files``, ``vault``, ``local``) for status pages; production
    refuses ``local``."""

    kind: str

    def get(self, name: str) -> bytes:
        """The value, or ``SecretNotFound``."""
        ...

    def put(self, name: str, value: bytes) -> None:
        """Create or replace; ``ReadOnlyStore`` where the backend cannot write."""
        ...

    def delete(self, name: str) -> None:
        """Remove; deleting a missing name is not an error."""
        ...

    def names(self, prefix: str = "") -> list[str]:
        """Names under ``prefix``, sorted."""
        ...
