"""Each secret-store backend against the interface, and the factory's refusals."""

from __future__ import annotations

import base64
import json
import os
import stat

import pytest

from console.secrets.factory import EnvStore, build_store
from console.secrets.files import FileStore
from console.secrets.local import LocalKeystore, generate_master_key, read_master_key
from console.secrets.settings import Backend, SecretsSettings
from console.secrets.store import (
    ReadOnlyStore,
    SecretNotFound,
    SecretStore,
    SecretStoreError,
)
from console.secrets.vault import VaultStore
from console.settings import ConfigError
from tests.secrets.vault_server import TOKEN, VaultStandIn

VALUE = b"whsec_c2VjcmV0LXN0b3JlLXRlc3QtdmFsdWUtMDEyMzQ1Njc4OQ=="


# --- platform-mounted files ------------------------------------------------------------------

@pytest.fixture
def mounted(tmp_path):
    root = tmp_path / "run-secrets"
    (root / "webhook" / "sandbox").mkdir(parents=True)
    (root / "webhook" / "sandbox" / "ab12cd34").write_bytes(VALUE + b"\n")
    (root / "oidc-client-secret").write_bytes(b"client-secret")
    return root


def test_files_read_what_the_platform_mounted_and_list_it(mounted):
    store = FileStore(mounted)
    assert isinstance(store, SecretStore) and store.kind == "files"
    assert store.get("webhook/sandbox/ab12cd34") == VALUE  # trailing newline dropped
    assert store.names() == ["oidc-client-secret", "webhook/sandbox/ab12cd34"]
    assert store.names("webhook/") == ["webhook/sandbox/ab12cd34"]
    with pytest.raises(SecretNotFound):
        store.get("webhook/sandbox/missing")


def test_files_are_read_only(mounted):
    store = FileStore(mounted)
    with pytest.raises(ReadOnlyStore):
        store.put("new", b"x")
    with pytest.raises(ReadOnlyStore):
        store.delete("oidc-client-secret")


@pytest.mark.parametrize("name", ["../outside", "/etc/passwd", "a/../../outside", "A", "",
                                  "a//b", "a/"])
def test_files_refuse_names_that_could_leave_the_directory(mounted, name):
    with pytest.raises(ValueError, match="not a secret name"):
        FileStore(mounted).get(name)


def test_files_refuse_a_symlink_pointing_outside_the_directory(mounted, tmp_path):
    (tmp_path / "elsewhere").write_bytes(b"not yours")
    os.symlink(tmp_path / "elsewhere", mounted / "escape")
    os.symlink(tmp_path, mounted / "escape-dir")
    store = FileStore(mounted)
    with pytest.raises(SecretStoreError, match="outside the secret directory") as refused:
        store.get("escape")
    assert str(tmp_path) not in str(refused.value)
    with pytest.raises(SecretStoreError, match="outside"):
        store.get("escape-dir/elsewhere")
    assert "escape" not in store.names()


def test_files_follow_kubernetes_links_inside_the_volume(tmp_path):
    root = tmp_path / "volume"
    data = root / "..2026_12_07_10_00_00.000"
    data.mkdir(parents=True)
    (data / "api-token").write_bytes(b"token-value")
    os.symlink(data.name, root / "..data")
    os.symlink("..data/api-token", root / "api-token")
    store = FileStore(root)
    assert store.get("api-token") == b"token-value"
    assert store.names() == ["api-token"]


def test_systemd_credentials_directory_is_the_default_files_dir(mounted):
    settings = SecretsSettings.from_env({"SECRETS_BACKEND": "files",
                                         "CREDENTIALS_DIRECTORY": str(mounted)},
                                        production=True)
    store = build_store(settings, production=True)
    assert store.kind == "files" and store.get("oidc-client-secret") == b"client-secret"


def test_files_without_a_directory_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="SECRETS_FILES_DIR"):
        SecretsSettings.from_env({"SECRETS_BACKEND": "files"}, production=False)
    settings = SecretsSettings(backend=Backend.FILES, files_dir=str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="does not exist"):
        build_store(settings, production=False)


# --- local encrypted keystore ----------------------------------------------------------------

@pytest.fixture
def master_key_file(tmp_path):
    path = tmp_path / "keys" / "master.key"
    path.parent.mkdir()
    generate_master_key(path)
    return path


def test_local_keystore_round_trip_encrypted_at_rest_mode_0600(tmp_path, master_key_file):
    store = LocalKeystore(tmp_path / "store", read_master_key(master_key_file))
    store.put("webhook/sandbox/ab12cd34", VALUE)
    assert store.get("webhook/sandbox/ab12cd34") == VALUE
    assert store.names() == ["webhook/sandbox/ab12cd34"]
    path = tmp_path / "store" / "webhook" / "sandbox" / "ab12cd34.secret"
    raw = path.read_bytes()
    assert VALUE not in raw and base64.b64encode(VALUE) not in raw
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(master_key_file.stat().st_mode) == 0o600
    document = json.loads(raw)
    assert set(document) == {"v", "wrap_nonce", "wrapped_key", "nonce", "ciphertext"}
    # Replacing writes a new data key: no two versions share a wrapped key.
    store.put("webhook/sandbox/ab12cd34", VALUE)
    assert json.loads(path.read_bytes())["wrapped_key"] != document["wrapped_key"]
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".tmp-")]
    store.delete("webhook/sandbox/ab12cd34")
    store.delete("webhook/sandbox/ab12cd34")  # missing: not an error
    with pytest.raises(SecretNotFound):
        store.get("webhook/sandbox/ab12cd34")


def test_local_keystore_refuses_another_master_key_and_a_renamed_file(tmp_path,
                                                                      master_key_file):
    store = LocalKeystore(tmp_path / "store", read_master_key(master_key_file))
    store.put("one", VALUE)
    other = LocalKeystore(tmp_path / "store", os.urandom(32))
    with pytest.raises(SecretStoreError, match="does not decrypt"):
        other.get("one")
    # A file copied under another secret's name does not decrypt (the name is authenticated).
    (tmp_path / "store" / "two.secret").write_bytes((tmp_path / "store" / "one.secret")
                                                    .read_bytes())
    with pytest.raises(SecretStoreError, match="does not decrypt"):
        store.get("two")


def test_master_key_file_is_never_overwritten_and_must_be_32_bytes(tmp_path,
                                                                   master_key_file):
    with pytest.raises(FileExistsError):
        generate_master_key(master_key_file)
    short = tmp_path / "short.key"
    short.write_text(base64.b64encode(b"x" * 16).decode())
    with pytest.raises(SecretStoreError, match="32 bytes"):
        read_master_key(short)


def test_local_master_key_inside_the_repository_is_refused():
    with pytest.raises(ConfigError, match="outside the repository"):
        SecretsSettings.from_env({"SECRETS_BACKEND": "local",
                                  "SECRETS_LOCAL_MASTER_KEY_FILE": "instance/master.key"},
                                 production=False)


def test_local_backend_from_settings(tmp_path, master_key_file):
    settings = SecretsSettings.from_env(
        {"SECRETS_BACKEND": "local", "SECRETS_LOCAL_MASTER_KEY_FILE": str(master_key_file),
         "SECRETS_LOCAL_DIR": str(tmp_path / "store")}, production=False)
    store = build_store(settings, production=False)
    assert store.kind == "local"
    store.put("x", b"1")
    assert store.get("x") == b"1"


# --- production refuses the local keystore and plain environment variables ---------------------

@pytest.mark.parametrize("backend", ["local", "env"])
def test_production_refuses_local_keystore_and_environment_variables(backend, master_key_file):
    env = {"SECRETS_BACKEND": backend, "SECRETS_LOCAL_MASTER_KEY_FILE": str(master_key_file)}
    with pytest.raises(ConfigError, match=rf"^SECRETS_BACKEND={backend}: .*production"):
        SecretsSettings.from_env(env, production=True)
    # A hand-built settings object does not slip past the factory either.
    with pytest.raises(ConfigError, match="production"):
        build_store(SecretsSettings(backend=Backend(backend),
                                    local_master_key_file=str(master_key_file)),
                    production=True)
    assert SecretsSettings.from_env(env, production=False).backend is Backend(backend)


def test_production_refusal_through_the_whole_settings():
    from console.settings import Settings
    from tests.test_settings import production

    with pytest.raises(ConfigError, match="SECRETS_BACKEND=env"):
        Settings.from_env(production(SECRETS_BACKEND="env"))
    assert Settings.from_env(production()).secrets.backend is Backend.NONE


def test_env_store_reads_prefixed_variables_only():
    store = EnvStore({"SECRET_WEBHOOK__SANDBOX__AB12": "v", "OTHER": "x"})
    assert store.get("webhook/sandbox/ab12") == b"v"
    with pytest.raises(SecretNotFound):
        store.get("other")
    with pytest.raises(ReadOnlyStore):
        store.put("a", b"b")


def test_an_unknown_backend_is_a_clear_config_error():
    with pytest.raises(ConfigError, match=r"SECRETS_BACKEND='s3' is not valid \(one of"):
        SecretsSettings.from_env({"SECRETS_BACKEND": "s3"}, production=False)


# --- Vault KV v2 (recorded-exchange stand-in on loopback) --------------------------------------

@pytest.fixture
def vault():
    with VaultStandIn() as server:
        yield server


def _vault_store(vault, token=TOKEN) -> VaultStore:
    settings = SecretsSettings.from_env({"SECRETS_BACKEND": "vault", "VAULT_ADDR": vault.url,
                                         "VAULT_TOKEN": token, "VAULT_PREFIX": "console/sandbox",
                                         "VAULT_TIMEOUT_S": "2"}, production=False)
    store = build_store(settings, production=False)
    assert store.kind == "vault"
    return store


def test_vault_kv2_round_trip_list_and_delete(vault):
    store = _vault_store(vault)
    store.put("webhook/sandbox/ab12cd34", VALUE)
    store.put("finci/api-token", b"\x00binary\xff")
    assert store.get("webhook/sandbox/ab12cd34") == VALUE
    assert store.get("finci/api-token") == b"\x00binary\xff"
    assert vault.data["console/sandbox/webhook/sandbox/ab12cd34"] == [
        {"value_b64": base64.b64encode(VALUE).decode()}]
    assert store.names() == ["finci/api-token", "webhook/sandbox/ab12cd34"]
    assert store.names("webhook/") == ["webhook/sandbox/ab12cd34"]
    store.delete("webhook/sandbox/ab12cd34")
    store.delete("webhook/sandbox/ab12cd34")
    with pytest.raises(SecretNotFound):
        store.get("webhook/sandbox/ab12cd34")
    methods = {method for method, _path, _status in vault.exchanges}
    assert {"GET", "POST", "DELETE"} <= methods
    assert all(path.startswith("/v1/secret/") for _m, path, _s in vault.exchanges)


def test_vault_refusal_and_outage_are_clear_errors_without_the_token(vault):
    store = _vault_store(vault, token="hvs.wrong-token")
    with pytest.raises(SecretStoreError, match="Vault refused to read") as refused:
        store.get("x")
    assert "hvs." not in str(refused.value)
    vault.down = True
    with pytest.raises(SecretStoreError, match="Vault could not read"):
        _vault_store(vault).get("x")


def test_vault_unreachable_is_a_store_error():
    store = VaultStore("http://127.0.0.1:9", TOKEN, timeout_s=0.5)
    with pytest.raises(SecretStoreError, match="unreachable"):
        store.get("x")


def test_vault_settings_are_validated():
    with pytest.raises(ConfigError, match="VAULT_ADDR and VAULT_TOKEN"):
        SecretsSettings.from_env({"SECRETS_BACKEND": "vault"}, production=False)
    with pytest.raises(ConfigError, match="https in production"):
        SecretsSettings.from_env({"SECRETS_BACKEND": "vault", "VAULT_ADDR": "http://vault:8200",
                                  "VAULT_TOKEN": "t"}, production=True)
    settings = SecretsSettings.from_env({"SECRETS_BACKEND": "vault",
                                         "VAULT_ADDR": "https://vault:8200",
                                         "VAULT_TOKEN": TOKEN}, production=True)
    assert settings.vault_token == TOKEN and TOKEN not in repr(settings)


def test_local_keystore_refuses_damaged_files_and_unreadable_master_keys(tmp_path,
                                                                         master_key_file,
                                                                         monkeypatch):
    with pytest.raises(SecretStoreError, match="cannot read the local keystore master key"):
        read_master_key(tmp_path / "missing.key")
    (tmp_path / "text.key").write_text("not base64!")
    with pytest.raises(SecretStoreError, match="must hold base64"):
        read_master_key(tmp_path / "text.key")
    with pytest.raises(SecretStoreError, match="32 bytes"):
        LocalKeystore(tmp_path / "store", b"short")
    store = LocalKeystore(tmp_path / "store", read_master_key(master_key_file))
    (tmp_path / "store" / "garbage.secret").write_text("{not json")
    with pytest.raises(SecretStoreError, match="cannot be read"):
        store.get("garbage")
    store.put("old", VALUE)
    path = tmp_path / "store" / "old.secret"
    document = json.loads(path.read_text())
    path.write_text(json.dumps({**document, "v": 99}))
    with pytest.raises(SecretStoreError, match="does not decrypt"):
        store.get("old")
    with pytest.raises(TypeError):
        store.put("text", "not bytes")
    (tmp_path / "store" / ".tmp-left-over.secret").write_text("{}")
    assert store.names() == ["garbage", "old"]

    def crash(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="No space"):
        store.put("new", VALUE)
    assert not (tmp_path / "store" / "new.secret").exists()
    assert [p.name for p in (tmp_path / "store").iterdir() if p.name.startswith(".tmp-")] == [
        ".tmp-left-over.secret"]


def test_files_refuse_an_oversized_secret(mounted):
    (mounted / "huge").write_bytes(b"x" * ((1 << 20) + 1))
    with pytest.raises(SecretStoreError, match="larger than"):
        FileStore(mounted).get("huge")
