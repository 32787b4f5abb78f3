"""Where secrets live: one frozen object read from the environment at start.

SECRETS_BACKEND                 none (default), files, vault, local, env
SECRETS_FILES_DIR               files: the mounted directory (default $CREDENTIALS_DIRECTORY,
                                the systemd credentials directory, when set)
SECRETS_LOCAL_DIR               local: where encrypted secrets are written (default
                                <instance>/secrets)
SECRETS_LOCAL_MASTER_KEY_FILE   local: the master key (32 bytes, base64), outside the repository
VAULT_ADDR, VAULT_TOKEN (or VAULT_TOKEN_FILE), VAULT_NAMESPACE, VAULT_KV_MOUNT (secret),
VAULT_PREFIX (console), VAULT_CACERT, VAULT_TIMEOUT_S (3)
KEYS_WEBHOOK_OVERLAP_HOURS      how long a replaced webhook secret keeps verifying (default 24)
KEYS_CACHE_SECONDS              how often ingress reloads its active webhook secrets (default 30)
KEY_ACTIONS_REQUIRE_SECOND_APPROVER
                                every create, rotate, retire and revoke of a webhook secret,
                                card-data key or inventory credential is a request a second
                                person with MANAGE_KEYS approves (console.keys.approvals);
                                default true in production, false in a sandbox (the demo)
KEY_ACTIONS_APPROVAL_MINUTES    how long such a request waits for approval (default 30)

Production refuses ``local`` (a key file on the same box as the data it protects) and ``env``
(secrets in plain environment variables leak through /proc, crash dumps and `docker inspect`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

# console.settings imports this module; its helpers are imported where they are used.

REPOSITORY = Path(__file__).resolve().parent.parent.parent


class Backend(StrEnum):
    NONE = "none"
    FILES = "files"
    VAULT = "vault"
    LOCAL = "local"
    ENV = "env"


REFUSED_IN_PRODUCTION = {
    Backend.LOCAL: "the local keystore is refused in production (it is for development and "
                   "single-box sandboxes); use files (platform secrets) or vault",
    Backend.ENV: "secrets in plain environment variables are refused in production; use files "
                 "(platform secrets) or vault",
}


@dataclass(frozen=True)
class SecretsSettings:
    backend: Backend = Backend.NONE
    files_dir: str | None = None
    local_dir: str | None = None
    local_master_key_file: str | None = None
    vault_url: str | None = None
    vault_token: str | None = field(default=None, repr=False)
    vault_namespace: str | None = None
    vault_mount: str = "secret"
    vault_prefix: str = "console"
    vault_ca_file: str | None = None
    vault_timeout_s: float = 3.0
    webhook_overlap_hours: int = 24
    cache_seconds: int = 30
    # Four eyes for key and credential actions (the default when read from the environment:
    # production yes, sandbox no).
    require_second_approver: bool = False
    approval_minutes: int = 30

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, production: bool,
                 instance_path: str = "instance") -> SecretsSettings:
        from console.settings import (
            ConfigError,
            _bool,
            _choice,
            _float,
            _int,
            _read,
            require_https_url,
        )

        backend = _choice(env, "SECRETS_BACKEND", Backend, Backend.NONE)
        if production and backend in REFUSED_IN_PRODUCTION:
            raise ConfigError(f"SECRETS_BACKEND={backend.value}: "
                              f"{REFUSED_IN_PRODUCTION[backend]}")
        values: dict = {
            "backend": backend,
            "webhook_overlap_hours": _int(env, "KEYS_WEBHOOK_OVERLAP_HOURS", 24, minimum=1,
                                          maximum=24 * 30),
            "cache_seconds": _int(env, "KEYS_CACHE_SECONDS", 30, minimum=1, maximum=3600),
            "require_second_approver": _bool(env, "KEY_ACTIONS_REQUIRE_SECOND_APPROVER",
                                             production),
            "approval_minutes": _int(env, "KEY_ACTIONS_APPROVAL_MINUTES", 30, minimum=1,
                                     maximum=24 * 60),
        }
        if backend is Backend.FILES:
            directory = _read(env, "SECRETS_FILES_DIR") or env.get("CREDENTIALS_DIRECTORY")
            if not directory:
                raise ConfigError("SECRETS_BACKEND=files needs SECRETS_FILES_DIR (the mounted "
                                  "secrets directory) or systemd's $CREDENTIALS_DIRECTORY")
            values["files_dir"] = directory
        elif backend is Backend.LOCAL:
            key_file = _read(env, "SECRETS_LOCAL_MASTER_KEY_FILE")
            if not key_file:
                raise ConfigError("SECRETS_BACKEND=local needs SECRETS_LOCAL_MASTER_KEY_FILE (a "
                                  "file outside the repository; create one with `flask --app "
                                  "wsgi keys init-master-key PATH`)")
            if Path(key_file).resolve().is_relative_to(REPOSITORY):
                raise ConfigError("SECRETS_LOCAL_MASTER_KEY_FILE must be outside the repository "
                                  "(a key next to the code ends up in a commit or an image)")
            values["local_master_key_file"] = key_file
            values["local_dir"] = (_read(env, "SECRETS_LOCAL_DIR")
                                   or str(Path(instance_path) / "secrets"))
        elif backend is Backend.VAULT:
            url = _read(env, "VAULT_ADDR")
            token = _read(env, "VAULT_TOKEN", secret=True)
            if not url or not token:
                raise ConfigError("SECRETS_BACKEND=vault needs VAULT_ADDR and VAULT_TOKEN (or "
                                  "VAULT_TOKEN_FILE)")
            values.update(
                vault_url=_vault_url(url, production=production, require=require_https_url),
                vault_token=token,
                vault_namespace=_read(env, "VAULT_NAMESPACE") or None,
                vault_mount=_read(env, "VAULT_KV_MOUNT") or "secret",
                vault_prefix=_read(env, "VAULT_PREFIX") or "console",
                vault_ca_file=_read(env, "VAULT_CACERT") or None,
                vault_timeout_s=_float(env, "VAULT_TIMEOUT_S", 3.0, minimum=0.1, maximum=30))
            from console.secrets.store import check_name

            try:
                check_name(values["vault_prefix"])
                check_name(values["vault_mount"])
            except ValueError:
                raise ConfigError("VAULT_PREFIX and VAULT_KV_MOUNT must be lower-case paths "
                                  "(letters, digits, -, _ and /)") from None
        return cls(**values)


def _vault_url(url: str, *, production: bool, require) -> str:
    from urllib.parse import urlsplit

    from console.settings import ConfigError

    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError(f"VAULT_ADDR={url!r} is not an http(s) URL")
    if production and parts.scheme != "https":
        raise ConfigError("VAULT_ADDR must be https in production")
    return url.rstrip("/")
