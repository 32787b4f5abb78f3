"""An in-memory ``SecretStore``, for tests and throw-away demos only.

Values live in this process and vanish with it, so a key generated here cannot be used by a
worker, another gunicorn worker or the next start: useless for real operation and therefore
refused in production (``MemorySecretStore(production=True)`` raises).
"""

from __future__ import annotations

from console.secrets.store import SecretNotFound, SecretStoreError, check_name


class MemorySecretStore:
    kind = "memory"

    def __init__(self, *, production: bool = False) -> None:
        if production:
            raise SecretStoreError("the in-memory secret store is for tests and demos only; "
                                   "production needs a real secret store")
        self._values: dict[str, bytes] = {}

    def get(self, name: str) -> bytes:
        try:
            return self._values[check_name(name)]
        except KeyError:
            raise SecretNotFound(name) from None

    def put(self, name: str, value: bytes) -> None:
        if not isinstance(value, bytes):
            raise TypeError("a secret value is bytes")
        self._values[check_name(name)] = value

    def delete(self, name: str) -> None:
        self._values.pop(check_name(name), None)

    def names(self, prefix: str = "") -> list[str]:
        return sorted(name for name in self._values if name.startswith(prefix))

    def __repr__(self) -> str:  # never the values
        return f"MemorySecretStore({len(self._values)} secret(s))"
