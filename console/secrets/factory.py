"""The configured secret store, built from ``SecretsSettings`` (see ``console.secrets.settings``).

``build_store`` is called once per process (``console.keys.webhook_secrets`` and the key
commands hold on to it); ``None`` means no store is configured, and whatever needs one says so.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from console.secrets.settings import REFUSED_IN_PRODUCTION, Backend, SecretsSettings
from console.secrets.store import (
    ReadOnlyStore,
    SecretNotFound,
    SecretStore,
    SecretStoreError,
    check_name,
)


class EnvStore:
    """Secrets as ``SECRET_<NAME>`` environment variables (``/`` and ``-`` become ``_``): for a
    laptop only; production refuses it."""

    kind = "env"

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._env = os.environ if environ is None else environ

    @staticmethod
    def variable(name: str) -> str:
        return "SECRET_" + check_name(name).upper().replace("/", "__").replace("-", "_")

    def get(self, name: str) -> bytes:
        value = self._env.get(self.variable(name))
        if value is None:
            raise SecretNotFound(name)
        return value.encode()

    def put(self, name: str, value: bytes) -> None:
        raise ReadOnlyStore("environment variables are set where the process is started")

    def delete(self, name: str) -> None:
        raise ReadOnlyStore("environment variables are set where the process is started")

    def names(self, prefix: str = "") -> list[str]:
        return []  # variable names do not map back to secret names unambiguously


def build_store(settings: SecretsSettings, *, production: bool,
                environ: Mapping[str, str] | None = None) -> SecretStore | None:
    from console.settings import ConfigError

    if production and settings.backend in REFUSED_IN_PRODUCTION:
        # Settings already refuse it; a hand-built SecretsSettings must not slip through.
        raise ConfigError(f"SECRETS_BACKEND={settings.backend.value}: "
                          f"{REFUSED_IN_PRODUCTION[settings.backend]}")
    if settings.backend is Backend.NONE:
        return None
    try:
        return _build(settings, environ)
    except SecretStoreError as exc:
        raise ConfigError(f"SECRETS_BACKEND={settings.backend.value}: {exc}") from None


def _build(settings: SecretsSettings, environ: Mapping[str, str] | None) -> SecretStore:
    if settings.backend is Backend.ENV:
        return EnvStore(environ)
    if settings.backend is Backend.FILES:
        from console.secrets.files import FileStore

        return FileStore(settings.files_dir or "")
    if settings.backend is Backend.LOCAL:
        from console.secrets.local import LocalKeystore, read_master_key

        return LocalKeystore(settings.local_dir or "instance/secrets",
                             read_master_key(settings.local_master_key_file or ""))
    from console.secrets.vault import VaultStore

    return VaultStore(settings.vault_url or "", settings.vault_token or "",
                      mount=settings.vault_mount, prefix=settings.vault_prefix,
                      namespace=settings.vault_namespace, timeout_s=settings.vault_timeout_s,
                      verify=settings.vault_ca_file or True)


def app_store(app) -> SecretStore | None:
    """The application's store, built on first use and kept for the process."""
    if "secrets.store" not in app.extensions:
        settings = app.extensions["settings"]
        app.extensions["secrets.store"] = build_store(settings.secrets,
                                                      production=settings.is_production)
    return app.extensions["secrets.store"]
