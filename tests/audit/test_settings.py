"""AUDIT_EXPORT_SIGNING_KEY (or _FILE) and AUDIT_EXPORT_MAX_ROWS: validated at start, a bad key
stops the process with one line naming the variable, and the key never shows in repr or output.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
)

from console.audit.export_format import key_fingerprint
from console.audit.settings import DEFAULT_MAX_ROWS, AuditSettings
from console.settings import ConfigError, Settings
from tests.audit.conftest import private_pem

ROOT = Path(__file__).resolve().parents[2]
BASE = {"CONSOLE_ENVIRONMENT": "sandbox", "SECRET_KEY": "k" * 48,
        "DATABASE_URL": "postgresql://postgres@127.0.0.1/test"}


def test_without_a_key_export_is_simply_not_configured():
    audit = Settings.from_env(BASE).audit
    assert audit.export_signing_key is None and not audit.export_configured
    assert audit.export_max_rows == DEFAULT_MAX_ROWS


def test_a_pem_key_is_read_from_the_variable_and_kept_out_of_repr(signing_key):
    pem = private_pem(signing_key)
    settings = Settings.from_env({**BASE, "AUDIT_EXPORT_SIGNING_KEY": pem,
                                  "AUDIT_EXPORT_MAX_ROWS": "5000"})
    key = settings.audit.export_signing_key
    assert settings.audit.export_configured and settings.audit.export_max_rows == 5000
    assert key_fingerprint(key.public_key()) == key_fingerprint(signing_key.public_key())
    body = pem.splitlines()[1]
    assert body not in repr(settings) and body not in repr(settings.audit)


def test_the_key_can_come_from_a_file(tmp_path, signing_key):
    path = tmp_path / "audit.pem"
    path.write_text(private_pem(signing_key))
    audit = AuditSettings.from_env({"AUDIT_EXPORT_SIGNING_KEY_FILE": str(path)})
    assert audit.export_signing_key.public_key() == signing_key.public_key()


def _encrypted() -> str:
    return Ed25519PrivateKey.generate().private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(b"passphrase")).decode()


def _rsa() -> str:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()


@pytest.mark.parametrize(("value", "message"), [
    ("not a key", "AUDIT_EXPORT_SIGNING_KEY is not a PEM private key"),
    ("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
     "AUDIT_EXPORT_SIGNING_KEY is not a PEM private key"),
    ("encrypted", "AUDIT_EXPORT_SIGNING_KEY is encrypted"),
    ("rsa", "AUDIT_EXPORT_SIGNING_KEY is not an Ed25519 key (found RSAPrivateKey)"),
])
def test_a_bad_key_is_refused_at_start_naming_the_variable(value, message):
    value = {"encrypted": _encrypted, "rsa": _rsa}.get(value, lambda: value)()
    with pytest.raises(ConfigError) as error:
        Settings.from_env({**BASE, "AUDIT_EXPORT_SIGNING_KEY": value})
    assert str(error.value).startswith(message)
    assert "PRIVATE KEY-----\nMI" not in str(error.value)


@pytest.mark.parametrize(("extra", "message"), [
    ({"AUDIT_EXPORT_SIGNING_KEY_FILE": "/nonexistent/audit.pem"},
     "AUDIT_EXPORT_SIGNING_KEY_FILE: cannot read"),
    ({"AUDIT_EXPORT_SIGNING_KEY": "x", "AUDIT_EXPORT_SIGNING_KEY_FILE": "/x"},
     "AUDIT_EXPORT_SIGNING_KEY and AUDIT_EXPORT_SIGNING_KEY_FILE are both set"),
    ({"AUDIT_EXPORT_MAX_ROWS": "0"}, "AUDIT_EXPORT_MAX_ROWS=0 is out of range"),
    ({"AUDIT_EXPORT_MAX_ROWS": "lots"}, "AUDIT_EXPORT_MAX_ROWS='lots' is not a whole number"),
])
def test_other_problems_are_named(extra, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({**BASE, **extra})


def test_a_bad_key_stops_the_process_with_one_line():
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CONSOLE_", "AUDIT_", "DATABASE_", "SECRET_KEY"))}
    env.update(BASE, AUDIT_EXPORT_SIGNING_KEY="-----BEGIN PRIVATE KEY-----\nsecretbits\n",
               PYTHONPATH=str(ROOT))
    # The CLI (gunicorn's on_starting reports the same line, see tests/test_gunicorn.py).
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "db", "current"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 2
    assert result.stderr == ("Error: configuration error: AUDIT_EXPORT_SIGNING_KEY is not a PEM "
                             "private key (expected -----BEGIN PRIVATE KEY-----)\n")
    assert "secretbits" not in result.stderr + result.stdout
