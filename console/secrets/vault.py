"""HashiCorp Vault KV version 2, through ``hvac``.

Each secret is one KV entry at ``<prefix>/<name>`` on the ``mount`` (default ``secret``), with one
field ``value_b64`` (values are bytes). Deleting removes the metadata and every version, so a
revoked key cannot be read back from an older version.

Every call has a short timeout (the console never waits long on a store) and every failure
becomes a :class:`SecretStoreError` whose message names the secret and the HTTP outcome, never a
value or the token. Vault itself is never called from the webhook hot path: callers cache what
they need (``console.keys.webhook_secrets``).
"""

from __future__ import annotations

import base64
import binascii
import contextlib

import hvac
import hvac.exceptions
import requests

from console.secrets.store import SecretNotFound, SecretStoreError, check_name

FIELD = "value_b64"


class VaultStore:
    kind = "vault"

    def __init__(self, url: str, token: str, *, mount: str = "secret", prefix: str = "console",
                 namespace: str | None = None, timeout_s: float = 3.0,
                 verify: bool | str = True) -> None:
        self.mount = mount
        self.prefix = check_name(prefix) if prefix else ""
        self._client = hvac.Client(url=url, token=token, namespace=namespace, timeout=timeout_s,
                                   verify=verify)
        self._kv = self._client.secrets.kv.v2

    def _path(self, name: str) -> str:
        check_name(name)
        return f"{self.prefix}/{name}" if self.prefix else name

    def _call(self, what: str, name: str, call):
        try:
            return call()
        except hvac.exceptions.InvalidPath:
            raise SecretNotFound(name) from None
        except (hvac.exceptions.Forbidden, hvac.exceptions.Unauthorized):
            raise SecretStoreError(f"Vault refused to {what} {name!r}: check the token's policy "
                                   f"for {self.mount}/{self.prefix}") from None
        except hvac.exceptions.VaultError as exc:
            raise SecretStoreError(f"Vault could not {what} {name!r} "
                                   f"({type(exc).__name__})") from None
        except requests.RequestException as exc:
            raise SecretStoreError(f"Vault is unreachable ({type(exc).__name__})") from None

    def get(self, name: str) -> bytes:
        path = self._path(name)
        answer = self._call("read", name, lambda: self._kv.read_secret_version(
            path=path, mount_point=self.mount, raise_on_deleted_version=True))
        try:
            return base64.b64decode(answer["data"]["data"][FIELD], validate=True)
        except (KeyError, TypeError, binascii.Error, ValueError):
            raise SecretStoreError(f"Vault entry {name!r} has no {FIELD!r} field") from None

    def put(self, name: str, value: bytes) -> None:
        if not isinstance(value, bytes | bytearray):
            raise TypeError("a secret value is bytes")
        path = self._path(name)
        encoded = base64.b64encode(bytes(value)).decode("ascii")
        self._call("write", name, lambda: self._kv.create_or_update_secret(
            path=path, secret={FIELD: encoded}, mount_point=self.mount))

    def delete(self, name: str) -> None:
        path = self._path(name)
        with contextlib.suppress(SecretNotFound):
            self._call("delete", name, lambda: self._kv.delete_metadata_and_all_versions(
                path=path, mount_point=self.mount))

    def names(self, prefix: str = "") -> list[str]:
        found: list[str] = []
        pending = [""]
        while pending:
            folder = pending.pop()
            path = "/".join(p for p in (self.prefix, folder.rstrip("/")) if p)
            try:
                answer = self._call("list", folder or "/", lambda p=path: self._kv.list_secrets(
                    path=p, mount_point=self.mount))
            except SecretNotFound:
                continue
            for key in (answer or {}).get("data", {}).get("keys", []):
                if key.endswith("/"):
                    pending.append(folder + key)
                else:
                    found.append(folder + key)
        return sorted(n for n in found if n.startswith(prefix))
